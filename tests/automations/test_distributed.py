"""Scale-out, with real processes on PostgreSQL: a broker restarted under load, and several web nodes with
several workers on one database. ``make test`` runs this file on the embedded queue and again with
``TASKS_BACKEND=rq`` (the broker test needs a broker: it is skipped on the embedded queue)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests
from django.conf import settings
from django.db import connection

from automations.models import AutomationEvent, AutomationLog, RunStatus, WorkerProcess
from records import services
from tests.automations.processes import PrivateRedis, wait_until
from tests.factories import AutomationRuleFactory, EntityFactory, MembershipFactory
from workspaces.models import Role

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("these tests run several processes on one database: they need PostgreSQL")


def registered_workers() -> int:
    return WorkerProcess.objects.filter(stopped_at__isnull=True).count()


def assert_each_run_once(rule, receiver, path, total):
    """Every record got exactly one run, which succeeded; every delivery carried its run's id, so a
    receiver that deduplicates on webhook-id saw each record exactly once."""
    logs = list(AutomationLog.objects.filter(automation=rule))
    assert len(logs) == total and len({log.record_id for log in logs}) == total
    assert {log.status for log in logs} == {RunStatus.SUCCESS}
    delivered = Counter(hit["webhook_id"] for hit in receiver.requests(path))
    assert set(delivered) == {log.delivery_id for log in logs}
    assert not AutomationEvent.objects.filter(processed_at__isnull=True).exists()
    return delivered


@pytest.fixture
def private_broker(tmp_path, settings):
    if settings.AUTOMATIONS_EMBEDDED_QUEUE:
        pytest.skip("the embedded queue has no broker (run with TASKS_BACKEND=rq)")
    broker = PrivateRedis(tmp_path)
    broker.start()
    settings.RQ_QUEUES = {settings.AUTOMATIONS_QUEUE: {"URL": broker.url, "DEFAULT_TIMEOUT": 600}}
    yield broker
    broker.stop()


def test_a_broker_restart_under_load_loses_nothing_and_never_changes_an_id(receiver, workers, private_broker):
    rule = AutomationRuleFactory(
        action_type="call_webhook", action_config={"url": receiver.url("/restart"), "method": "POST"}
    )
    for name in ("a", "b"):
        workers.start(name)
    wait_until(lambda: registered_workers() >= 2, timeout=30, what="both workers to register")
    total = 600
    for i in range(total):
        services.record_create(entity=rule.entity, data={"name": f"L{i}"})
        if i == 200:
            wait_until(lambda: len(receiver.requests("/restart")) >= 100, timeout=60, what="deliveries to flow")
            private_broker.stop()  # queued messages are gone with it (no persistence), writes go on
        if i == 400:
            private_broker.start()
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == total,
        timeout=120,
        interval=0.5,
        what=f"all {total} runs to succeed after the broker restart",
    )
    delivered = assert_each_run_once(rule, receiver, "/restart", total)
    assert len(delivered) == total
    assert all(proc.poll() is None for proc in workers.procs), workers.output()  # they rode it out


def test_two_web_nodes_and_four_workers_deliver_every_record_once(receiver, workers, web_servers):
    owner = MembershipFactory(role=Role.OWNER)
    entity = EntityFactory(workspace=owner.workspace)
    rule = AutomationRuleFactory(
        workspace=owner.workspace,
        entity=entity,
        action_type="call_webhook",
        action_config={"url": receiver.url("/nodes"), "method": "POST"},
    )
    nodes = [web_servers.start(workers=1), web_servers.start(workers=1)]
    for i in range(4):
        workers.start(f"w{i}")
    path = f"/api/v1/workspaces/{owner.workspace_id}/entities/{entity.id}/records/"
    headers = {"Authorization": f"Token {owner.user.auth_token.key}"}
    bulk, single, per_thread = 100, 50, 12  # 4 threads x (12 x 100 + 50) = 5,000 records
    failures: list[str] = []

    def client(node: str, thread: int) -> None:
        with requests.Session() as session:
            for batch in range(per_thread):
                items = [{"data": {"name": f"n{thread}-{batch}-{i}"}} for i in range(bulk)]
                answer = session.post(f"{node}{path}bulk/", json={"records": items}, headers=headers, timeout=60)
                if answer.status_code != 201:
                    failures.append(f"{node} bulk {answer.status_code} {answer.text[:200]}")
            for i in range(single):
                answer = session.post(f"{node}{path}", json={"data": {"name": f"s{thread}-{i}"}}, headers=headers)
                if answer.status_code != 201:
                    failures.append(f"{node} single {answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client, args=(nodes[t % 2], t)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures[:3]
    total = 4 * (per_thread * bulk + single)
    assert total == 5000
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == total,
        timeout=180,
        interval=0.5,
        what=f"all {total} runs to succeed",
    )
    delivered = assert_each_run_once(rule, receiver, "/nodes", total)
    assert sum(delivered.values()) == total  # nothing died here: exactly one delivery per run
    assert set(AutomationLog.objects.filter(automation=rule).values_list("attempts", flat=True)) == {1}
    # the work was shared: every worker executed runs
    assert len(set(AutomationLog.objects.filter(automation=rule).values_list("worker_id", flat=True))) == 4, (
        settings.TASKS_BACKEND
    )


def test_cache_url_shares_the_api_throttle_between_web_nodes(web_servers, tmp_path):
    """Without CACHE_URL each process counts for itself; with it, every node counts in the same Redis."""
    counters = PrivateRedis(tmp_path)
    counters.start()
    try:
        owner = MembershipFactory(role=Role.OWNER)
        entity = EntityFactory(workspace=owner.workspace)
        env = {"API_THROTTLE_WRITE": "6/min", "CACHE_URL": counters.url}
        nodes = [web_servers.start(**env), web_servers.start(**env)]
        path = f"/api/v1/workspaces/{owner.workspace_id}/entities/{entity.id}/records/"
        headers = {"Authorization": f"Token {owner.user.auth_token.key}"}
        answers = [
            requests.post(f"{nodes[i % 2]}{path}", json={"data": {"name": f"n{i}"}}, headers=headers, timeout=30)
            for i in range(8)
        ]
        assert [a.status_code for a in answers] == [201] * 6 + [429] * 2  # 3 + 3 writes, then both refuse
        assert answers[-1].json()["success"] is False and int(answers[-1].headers["Retry-After"]) > 0
    finally:
        counters.stop()
