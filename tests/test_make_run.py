"""`make run` end to end: it writes .env with this run's port, serves, runs a worker, and a Ctrl+C (SIGINT
to its process group, as a terminal sends it) stops web and workers cleanly with no error from make.

One real run (migrate + seed + web + worker) on a temporary SQLite database and .env: about 10 s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.worker


def free_port() -> int:
    """A free port in 8100-8199 (the range this project's dev servers use)."""
    for port in range(8100, 8200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 8100-8199")


def session_processes(sid: int) -> list[str]:
    listing = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(sid)], capture_output=True, text=True).stdout
    return [line.strip() for line in listing.splitlines() if line.strip()]


def wait_until(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return response.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_web_and_workers_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DEMO_WEBHOOK_INBOX", "DEMO_BASE_URL"}}
    env.pop("AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS", None)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DOTENV_FILE=str(tmp_path / ".env"),
        DEMO_PASSWORD="demo-pass-123",  # else seed_demo writes .demo-password into the checkout
        PYTHONUNBUFFERED="1",
    )
    # -o: never reinstall the virtualenv from a test (that would reach the package index).
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.base", "run", f"PORT={port}", "WORKERS=1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # A terminal's job gets SIGINT at its default even when pytest itself was started ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(line.decode(errors="replace") for line in proc.stdout))
    reader.start()
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/admin/login/"), timeout=90, what="the web server")
        wait_until(lambda: "automations worker" in "".join(output), timeout=30, what="the worker")
        running = session_processes(proc.pid)
        assert any("runserver" in p for p in running) and any("automations_worker" in p for p in running), running

        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        reader.join(timeout=10)
    text = "".join(output)

    wait_until(lambda: not session_processes(proc.pid), timeout=10, what="every process to end")
    assert "Stopped." in text  # bin/run-demo's clean path, which then exits 0
    assert "make: ***" not in text and "Segmentation fault" not in text, text[-2000:]
    assert "Traceback" not in text, text[-4000:]
    # GNU make re-raises a SIGINT it received on itself once its recipe has returned (so a shell loop
    # around it stops too): its own status is "killed by SIGINT" whatever the recipe did.
    assert proc.returncode == -signal.SIGINT

    written = dotenv_values(tmp_path / ".env")
    assert written["DEMO_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert written["AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS"] == "127.0.0.1"
    assert written["DEBUG"] == "true" and written["DEMO_WEBHOOK_INBOX"] == "true"
    assert written["DATABASE_URL"] == env["DATABASE_URL"]
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # may hold a database password
