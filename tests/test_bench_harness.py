"""The benchmark harness's own pieces (bench/run.py, bench/receiver.py), without running a benchmark: the
figures it reports are only as good as these."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_phase_is_documented_and_has_targets(bench):
    for name in ("steps", "delays", "time_triggers", "takeover"):
        assert name in bench.PHASES
        assert f"``{name}``" in bench.__doc__
    rows = bench.evaluate_targets({}, quick=True)
    assert {row["target"] for row in rows} == set(bench.TARGETS)
    assert all(row["status"] == "not measured" for row in rows)
    assert set(bench.FULL) == set(bench.QUICK)


def test_targets_of_the_engine_phases(bench):
    results = {
        "steps": {"cpu_ratio_3_vs_1": 3.2},
        "delays": {"difference_total_pct_core": -0.1},
        "time_triggers": {
            "schedule": {"seconds": 12.0},
            "due_burst_all_ran_once": True,
            "idle": {"difference_total_pct_core": 0.7},
        },
        "takeover": {"all_delivered": True, "held_last_delivered_since_new_worker_s": 17.5},
    }
    status = {row["target"]: row["status"] for row in bench.evaluate_targets(results, quick=False)}
    assert status["steps_cpu_ratio_3_vs_1"] == "miss"
    assert status["delays_idle_cpu_diff_pct_core"] == "pass"
    assert status["tt_schedule_100k_seconds"] == "pass"
    assert status["tt_due_burst_all_ran_once"] == "pass"
    assert status["tt_idle_1m_cpu_diff_pct_core"] == "miss"
    assert status["takeover_all_delivered"] == "pass"
    assert status["takeover_held_s_after_new_worker"] == "pass"


def test_percentiles_and_idle_comparison(bench):
    values = [float(v) for v in range(1, 101)]
    assert bench.pct(values, 50) == pytest.approx(50.5)
    assert bench.spread(values)["max"] == 100.0
    window = {"process_pct_core": 1.0, "postgres_pct_core": 0.5, "total_pct_core": 1.5}
    loaded = {"process_pct_core": 1.4, "postgres_pct_core": 0.5, "total_pct_core": 1.9}
    later = {"process_pct_core": 1.2, "postgres_pct_core": 0.5, "total_pct_core": 1.7}
    out = bench.idle_comparison(window, loaded, later)
    assert out["total_pct_core"] == {"empty_mean": 1.6, "loaded": 1.9, "difference": 0.3, "empty_windows_gap": 0.2}


def test_free_port_is_in_the_allowed_range(bench):
    port = bench.free_port()
    assert bench.PORT_RANGE[0] <= port <= bench.PORT_RANGE[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_cpu_meter_counts_this_process(bench):
    import os

    with bench.CpuMeter([os.getpid()]) as meter:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
    assert 0.2 <= meter.process_s <= 1.0
    assert meter.postgres_s == 0
    assert meter.summary(per=10)["process_cpu_ms_per_item"] >= 20


def test_receiver_binds_in_range_delays_and_resets(bench):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "receiver.py"), f"{bench.PORT_RANGE[0]}-{bench.PORT_RANGE[1]}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().split()[1])
        assert bench.PORT_RANGE[0] <= port <= bench.PORT_RANGE[1]
        receiver = bench.Receiver(port)
        receiver.delay(150)
        body = json.dumps({"record": {"id": "r1"}}).encode()
        started = time.monotonic()
        status, _ = bench.http_request("127.0.0.1", port, "POST", "/hook", body, {"webhook-id": "msg_1"})
        assert status == 200
        assert time.monotonic() - started >= 0.15
        assert receiver.hits()[0][:2] == ["msg_1", "r1"]
        receiver.reset()
        assert receiver.count() == 0
        started = time.monotonic()
        bench.http_request("127.0.0.1", port, "POST", "/hook", body, {"webhook-id": "msg_2"})
        assert time.monotonic() - started < 0.15
    finally:
        proc.kill()
        proc.wait(timeout=5)
