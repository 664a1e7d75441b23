"""/metrics in production's shape: gunicorn with two workers and two automations_worker processes sharing
one PROMETHEUS_MULTIPROC_DIR on PostgreSQL. Every scrape, whichever gunicorn worker answers it, reports
the runs all the processes executed; and a worker restarted keeps the counts (Prometheus counters never go
down while the directory lives)."""

from __future__ import annotations

import pytest
import requests
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from automations.models import AutomationLog, RunStatus, WorkerProcess
from records import services
from tests.automations.processes import wait_until
from tests.factories import AutomationRuleFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TOKEN = "multi-process-metrics-token"


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("several processes on one database: PostgreSQL only")


def scrape(base: str) -> dict:
    response = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_every_scrape_adds_up_every_process(receiver, workers, web_servers, tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": TOKEN}
    base = web_servers.start(workers=2, **env)
    rule = AutomationRuleFactory(
        action_type="call_webhook", action_config={"url": receiver.url("/hook"), "method": "POST"}
    )
    first = [workers.start("a", **env), workers.start("b", **env)]
    wait_until(lambda: WorkerProcess.objects.filter(stopped_at__isnull=True).count() >= 2, timeout=30, what="workers")

    def delivered(count):
        return AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == count

    for i in range(40):
        services.record_create(entity=rule.entity, data={"name": f"L{i}"})
    wait_until(lambda: delivered(40), timeout=60, what="40 deliveries")
    ran_by = set(AutomationLog.objects.filter(automation=rule).values_list("worker_id", flat=True))

    success = ("automations_runs_total", frozenset({("status", "success"), ("action_type", "call_webhook")}))
    latency = ("automations_delivery_latency_seconds_count", frozenset({("action_type", "call_webhook")}))
    alive = ("automations_workers_alive", frozenset())
    scrapes = [scrape(base) for _ in range(8)]  # both gunicorn workers answer some of them
    assert {s[success] for s in scrapes} == {40.0}, (ran_by, workers.output())
    assert {s[latency] for s in scrapes} == {40.0}
    assert {s[alive] for s in scrapes} == {2.0}

    # A worker stops (SIGTERM) and another starts: the counts it made stay in the directory.
    first[0].terminate()
    first[0].wait(timeout=60)
    workers.start("c", **env)
    for i in range(10):
        services.record_create(entity=rule.entity, data={"name": f"M{i}"})
    wait_until(lambda: delivered(50), timeout=60, what="50 deliveries")
    assert {scrape(base)[success] for _ in range(4)} == {50.0}
    assert any(metrics_dir.glob("histogram_*.db"))
