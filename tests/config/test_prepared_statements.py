"""On PostgreSQL the server binds the parameters and the hot fixed statements (``config.sql.Statement``) are
prepared on their first run on a connection (``DB_PREPARED_STATEMENTS``, on by default): parsed and planned
once. Statements whose plans depend on their values, and every ORM query, are never prepared."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction

from automations import sql
from automations.models import AutomationLog
from records import services

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")


def prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def options_with(**env: str) -> dict:
    """The default database's OPTIONS as the settings build them in a fresh process with ``env``."""
    probe = "import json, config.settings as s; print(json.dumps(s.DATABASES['default'].get('OPTIONS', {})))"
    clean = {k: v for k, v in os.environ.items() if k != "DB_PREPARED_STATEMENTS"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_on_by_default_and_off_on_request():
    assert options_with() == {"server_side_binding": True}
    assert options_with(DB_PREPARED_STATEMENTS="false") == {}
    assert options_with(DATABASE_URL="sqlite:///:memory:").get("server_side_binding") is None


@pytest.mark.django_db(transaction=True)
def test_a_hot_statement_is_prepared_on_its_first_run(entity):
    services.record_create(entity=entity, data={"name": "Ada"})
    with transaction.atomic():
        sql.take_events(ids=None, limit=50, now=T0)
    assert [s for s in prepared() if "automations_automationevent" in s and "SKIP LOCKED" in s]


@pytest.mark.django_db(transaction=True)
def test_orm_queries_and_value_dependent_statements_are_not_prepared(entity):
    """A generic plan (made without the values) would miss the run log's partial indexes: a scan of the
    whole table at every poll."""
    for _ in range(10):
        list(AutomationLog.objects.filter(status__in=["pending", "retrying"], next_attempt_at__lte=T0)[:5])
        with transaction.atomic():
            sql.claim_runs(ids=None, limit=5, now=T0, worker_id="w", lease=T0, due=True)
            sql.take_due_times(limit=5, now=T0)
        sql.anything_due(now=T0)
    assert [s for s in prepared() if "automations_automationlog" in s or "automations_duetime" in s] == []
