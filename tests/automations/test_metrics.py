"""GET /metrics: access by token, and the numbers moving after real runs of the real worker loop.

The series observed in-process are global to the test process, so each test compares a scrape before and
after. Several processes adding up through PROMETHEUS_MULTIPROC_DIR (gunicorn + automations_worker) are in
tests/automations/test_metrics_multiprocess.py."""

import datetime as dt

import pytest
import time_machine
from django.db import OperationalError
from django.db.backends import utils
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from automations import tasks
from automations.exceptions import PermanentActionError, RetryableActionError
from automations.models import AutomationLog, RunStatus, WorkerProcess
from records import services

TOKEN = "s3cret-metrics-token-0123456789"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def scrape() -> dict:
        """{(sample name, frozenset(labels)): value} of one scrape."""
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    return scrape


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_no_token_configured_means_no_endpoint(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Token {TOKEN}", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_the_token_is_required(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"automations_" not in response.content


def test_scraped_by_ip_address_with_the_token(client, settings, db):
    settings.METRICS_TOKEN = TOKEN
    settings.ALLOWED_HOSTS = ["automations.example.com"]
    response = client.get("/metrics", HTTP_HOST="10.0.3.7:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200


# The in-process worker closes its connection between batches (close_old_connections), which a
# test transaction does not survive on PostgreSQL: these tests commit for real.
@pytest.mark.django_db(transaction=True)
def test_runs_move_the_counters_and_histograms(entity, make_rule, scripted, worker, scrape, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    make_rule()
    before = scrape()
    scripted.outcomes = [
        {"ok": 1},
        {"ok": 2},
        PermanentActionError("HTTP 400"),
        RetryableActionError("HTTP 503"),
    ]
    for name in ("a", "b", "c", "d"):
        services.record_create(entity=entity, data={"name": name})
    worker()
    after = scrape()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("automations_runs_total", status="success", action_type="scripted") == 2
    assert moved("automations_runs_total", status="error", action_type="scripted") == 1
    assert moved("automations_run_retries_total", action_type="scripted") == 1
    # Every attempt has a duration; only final outcomes have a delivery latency.
    assert moved("automations_run_duration_seconds_count", action_type="scripted") == 4
    assert moved("automations_delivery_latency_seconds_count", action_type="scripted") == 3
    assert moved("automations_delivery_latency_seconds_bucket", action_type="scripted", le="+Inf") == 3
    latency = moved("automations_delivery_latency_seconds_sum", action_type="scripted")
    assert 0 < latency < 30  # seconds, from each record's change to its run's end, for three runs
    # The retry waits for its time: one open run, not ready yet.
    assert value(after, "automations_runs_open", status="retrying") == 1
    assert value(after, "automations_queue_ready", kind="run") == 0
    assert value(after, "automations_database_up") == 1


def test_latency_of_a_retried_run_spans_its_retries(entity, make_rule, scripted, scrape, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [300]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("HTTP 503"), {"ok": True}]
    make_rule()
    before = scrape()
    t0 = timezone.now()
    with time_machine.travel(t0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        tasks.handle_events()
        clock.shift(300)
        tasks.handle_due_runs()
    after = scrape()
    assert AutomationLog.objects.get().status == RunStatus.SUCCESS
    count = value(after, "automations_delivery_latency_seconds_count", action_type="scripted") - value(
        before, "automations_delivery_latency_seconds_count", action_type="scripted"
    )
    total = value(after, "automations_delivery_latency_seconds_sum", action_type="scripted") - value(
        before, "automations_delivery_latency_seconds_sum", action_type="scripted"
    )
    assert count == 1 and total == pytest.approx(300, abs=1)


def test_auto_disables_are_counted(entity, make_rule, scripted, scrape, settings):
    settings.AUTOMATIONS_MAX_CONSECUTIVE_FAILURES = 2
    scripted.outcomes = [PermanentActionError("HTTP 400")] * 2
    rule = make_rule()
    before = value(scrape(), "automations_rules_auto_disabled_total", action_type="scripted")
    for name in ("a", "b"):
        services.record_create(entity=entity, data={"name": name})
        tasks.handle_events()
    rule.refresh_from_db()
    assert not rule.is_active
    assert value(scrape(), "automations_rules_auto_disabled_total", action_type="scripted") - before == 1


def test_queue_and_workers_are_counted_at_scrape_time(entity, make_rule, scripted, scrape):
    make_rule()
    now = timezone.now()
    with time_machine.travel(now - dt.timedelta(seconds=42), tick=False):
        services.record_create(entity=entity, data={"name": "waiting"})
    services.record_create(entity=entity, data={"name": "waiting too"})
    WorkerProcess.objects.create(id="w-alive", hostname="node-1", started_at=now, last_seen_at=now)
    WorkerProcess.objects.create(
        id="w-silent", hostname="node-2", started_at=now, last_seen_at=now - dt.timedelta(minutes=3)
    )
    samples = scrape()
    assert value(samples, "automations_queue_ready", kind="event") == 2
    assert value(samples, "automations_queue_ready", kind="run") == 0
    assert 42 <= value(samples, "automations_queue_oldest_ready_age_seconds") < 60
    assert value(samples, "automations_workers_alive") == 1
    beat = value(samples, "automations_worker_last_heartbeat_timestamp_seconds", worker="w-alive", hostname="node-1")
    assert beat == pytest.approx(now.timestamp(), abs=1)
    assert value(samples, "automations_worker_last_heartbeat_timestamp_seconds", worker="w-silent", hostname="node-2")


def test_a_broken_metrics_directory_never_stops_a_process(settings):
    """A directory that cannot be made (here: under a file) costs the process its samples, nothing else."""
    if not settings.AUTOMATIONS_EMBEDDED_QUEUE:
        pytest.skip("with TASKS_BACKEND=rq, django-rq's own Prometheus summary opens its file at import")
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import django; django.setup()\n"
        "from automations import telemetry\n"
        "telemetry.DURATION  # imported fine\n"
        "print('started')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PROMETHEUS_MULTIPROC_DIR": __file__ + "/metrics",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "started" in done.stdout and "PROMETHEUS_MULTIPROC_DIR" in done.stderr and "not usable" in done.stderr


def test_observing_into_a_broken_directory_is_swallowed(entity, make_rule, scripted, monkeypatch):
    from automations import telemetry

    def broken(*args, **kwargs):
        raise NotADirectoryError("metrics directory gone")

    monkeypatch.setattr(telemetry.DURATION, "labels", broken)
    monkeypatch.setattr(telemetry, "_failed_once", False)
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()
    assert AutomationLog.objects.get().status == RunStatus.SUCCESS  # the run is unaffected
    assert telemetry._failed_once


def test_a_scrape_while_the_database_fails_says_so(client, settings, db, monkeypatch):
    settings.METRICS_TOKEN = TOKEN

    def unreachable(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(utils.CursorWrapper, "execute", unreachable)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    monkeypatch.undo()
    assert response.status_code == 200
    text = response.content.decode()
    assert "automations_database_up 0.0" in text
    assert "automations_queue_ready" not in text
