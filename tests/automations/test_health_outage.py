"""/health/ready against a PostgreSQL that is really stopped: a throwaway cluster of this test's own
(initdb into a temporary directory, a free port), served by a real gunicorn. The shared PostgreSQL of the
other tests is never touched.

Fresh database: 503 "migrations pending"; migrated: 200; cluster stopped: 503 "unavailable" while
/health/live stays 200; cluster started again: 200 without restarting gunicorn."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.automations.processes import ROOT, free_port, wait_until

pytestmark = pytest.mark.worker

BINDIR = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory (run as the ``postgres`` user when we are root, since
    PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wtc-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def run(self, tool: str, *args: str) -> None:
        argv = [f"{BINDIR}/{tool}", *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/wtc_outage"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_postgres():
    if BINDIR is None or not Path(BINDIR, "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        cluster.run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "wtc_outage")
        yield cluster
    finally:
        cluster.destroy()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a local URL of the test's own)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_ready_follows_a_database_that_is_really_stopped_and_started(throwaway_postgres, web_servers):
    base = web_servers.start(DATABASE_URL=throwaway_postgres.url)

    status, body = get(f"{base}/health/ready")
    assert (status, body["status"], body["checks"]["database"]) == (503, "unavailable", "migrations pending")

    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": throwaway_postgres.url, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    status, body = get(f"{base}/health/ready")
    assert status == 200 and body["checks"]["database"] == "ok"
    assert body["checks"]["queue"] == {"ready": 0, "oldest_ready_age_seconds": 0.0}

    throwaway_postgres.stop()
    status, body = get(f"{base}/health/ready")
    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {
            "database": "unavailable",
            "queue": {"ready": None, "oldest_ready_age_seconds": None},
            "workers": {"alive": None},
        },
    }
    assert get(f"{base}/health/live") == (200, {"status": "ok"})

    throwaway_postgres.start()
    wait_until(lambda: get(f"{base}/health/ready")[0] == 200, timeout=30, what="ready again after the restart")
