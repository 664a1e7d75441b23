"""On PostgreSQL the server binds the parameters and a statement run 5 times on a connection is prepared
(``DB_PREPARED_STATEMENTS``, on by default): the hot statements are parsed and planned once per connection."""

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
    assert options_with() == {"server_side_binding": True, "prepare_threshold": 5}
    assert options_with(DB_PREPARED_STATEMENTS="false") == {}
    assert options_with(DATABASE_URL="sqlite:///:memory:").get("server_side_binding") is None


@pytest.mark.django_db(transaction=True)
def test_a_hot_statement_is_prepared_after_five_runs(entity):
    services.record_create(entity=entity, data={"name": "Ada"})
    for _ in range(6):
        with transaction.atomic():
            sql.take_events(ids=None, limit=50, now=T0)
    assert [s for s in prepared() if "automations_automationevent" in s and "SKIP LOCKED" in s]
