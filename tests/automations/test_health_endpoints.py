"""/health/live and /health/ready: shapes, what they count, and that probes pass where a load balancer calls
them (by IP address, over plain HTTP, no credentials). The database really going away is in
tests/test_health_outage.py."""

import datetime as dt

import pytest
from django.db import OperationalError
from django.db.backends import utils
from django.utils import timezone

from automations import tasks
from automations.models import AutomationLog, RunStatus, WorkerProcess
from config import health
from records import services


def test_live_answers_without_touching_the_database(client):
    # No ``db`` fixture: pytest-django fails any database access in this test.
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_on_an_idle_engine(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "queue": {"ready": 0, "oldest_ready_age_seconds": 0.0},
            "workers": {"alive": 0},
        },
    }
    assert not response.cookies  # no session, nothing to remember


def test_ready_counts_waiting_events_due_runs_and_live_workers(client, entity, make_rule, scripted):
    make_rule()
    now = timezone.now()
    services.record_create(entity=entity, data={"name": "matched, run waiting"})
    tasks.handle_events()  # one run, successful
    AutomationLog.objects.update(
        status=RunStatus.RETRYING, next_attempt_at=now - dt.timedelta(seconds=30), finished_at=None
    )
    services.record_create(entity=entity, data={"name": "not matched yet"})
    services.record_create(entity=entity, data={"name": "not matched yet either"})
    WorkerProcess.objects.create(id="alive", started_at=now, last_seen_at=now)
    WorkerProcess.objects.create(id="silent", started_at=now, last_seen_at=now - dt.timedelta(minutes=5))
    WorkerProcess.objects.create(id="stopped", started_at=now, last_seen_at=now, stopped_at=now)

    body = client.get("/health/ready").json()

    assert body["status"] == "ok"
    assert body["checks"]["queue"]["ready"] == 3  # two events + one due retry
    assert 29 <= body["checks"]["queue"]["oldest_ready_age_seconds"] < 60  # the retry, due 30 s ago
    assert body["checks"]["workers"] == {"alive": 1}


def test_a_run_due_later_is_not_ready(client, entity, make_rule, scripted):
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()
    AutomationLog.objects.update(status=RunStatus.RETRYING, next_attempt_at=timezone.now() + dt.timedelta(hours=1))
    assert client.get("/health/ready").json()["checks"]["queue"] == {"ready": 0, "oldest_ready_age_seconds": 0.0}


def test_probes_by_ip_address_over_plain_http_with_https_enforced(client, db, settings):
    """A load balancer's probe: Host is the node's address (not in ALLOWED_HOSTS), plain HTTP while the site
    redirects to HTTPS. Neither stops the probe; a normal page is still redirected."""
    settings.ALLOWED_HOSTS = ["automations.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/health/live", "/health/ready", "/health/ready/"):
        assert client.get(path, HTTP_HOST="10.0.3.7:8000").status_code == 200, path
    assert client.get("/", HTTP_HOST="automations.example.com").status_code == 301


def test_only_reads_are_allowed(client, db):
    assert client.post("/health/ready").status_code == 405
    assert client.head("/health/live").status_code == 200


# transaction=True: the failed check closes its connection (a fresh one next time), which a test
# transaction does not survive on PostgreSQL.
@pytest.mark.django_db(transaction=True)
def test_ready_is_503_while_the_database_fails(client, monkeypatch):
    def unreachable(self, *args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr(health, "_migrations_applied", True)
    monkeypatch.setattr(utils.CursorWrapper, "execute", unreachable)
    response = client.get("/health/ready")
    live = client.get("/health/live")
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "unavailable",
            "queue": {"ready": None, "oldest_ready_age_seconds": None},
            "workers": {"alive": None},
        },
    }
    assert "5432" not in response.content.decode()  # no connection details
    assert live.status_code == 200
    assert client.get("/health/ready").status_code == 200  # back when the database is


def test_pending_migrations_make_the_node_not_ready(client, db, monkeypatch):
    """Code deployed before its migrations ran: not ready (the check asks Django's migration executor)."""
    from django.db.migrations.executor import MigrationExecutor

    real_plan = MigrationExecutor.migration_plan

    def one_pending(self, targets, clean_start=False):
        applied = real_plan(self, targets, clean_start)
        assert applied == []  # the test database is fully migrated
        return [(self.loader.graph.nodes[("automations", "0001_initial")], False)]

    monkeypatch.setattr(health, "_migrations_applied", False)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", one_pending)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "migrations pending"
    assert response.json()["checks"]["queue"] == {"ready": None, "oldest_ready_age_seconds": None}


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_answers_carry_no_request_logging_or_session(client, db, path):
    response = client.get(path)
    assert "Set-Cookie" not in response
    assert set(response.json()) <= {"status", "checks"}
