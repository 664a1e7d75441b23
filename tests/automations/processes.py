"""Real processes for the fault and scale-out tests: a threaded HTTP receiver, ``automations_worker``
subprocesses, web servers (gunicorn) and a private Redis, all on the pytest database and 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """A threaded HTTP/1.1 receiver. ``plan(path, [(status, delay), ...])`` scripts the next answers of a
    path (then 200 at once). Every request is recorded on arrival, before its answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict] = []
        self.plans: dict[str, list[tuple[int, float]]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append(
                        {"path": self.path, "webhook_id": self.headers.get("webhook-id"), "at": time.monotonic()}
                    )
                    plan = receiver.plans.get(self.path) or []
                    status, delay = plan.pop(0) if plan else (200, 0.0)
                if delay:
                    time.sleep(delay)
                body = b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the worker died while we were answering
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def plan(self, path: str, answers: list[tuple[int, float]]) -> None:
        with self.lock:
            self.plans[path] = list(answers)

    def requests(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [h for h in self.hits if path is None or h["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- worker processes


def database_url() -> str:
    db = connection.settings_dict
    auth = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**env: str) -> dict[str, str]:
    """The environment of a worker or web process: the test database, fast recovery, the test's broker."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TASKS_BACKEND": settings.TASKS_BACKEND,
        "TASKS_BROKER_URL": settings.RQ_QUEUES[settings.AUTOMATIONS_QUEUE]["URL"]
        if not settings.AUTOMATIONS_EMBEDDED_QUEUE
        else "",
        "AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
        "AUTOMATIONS_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "AUTOMATIONS_RECOVERY_INTERVAL": "1",
        "AUTOMATIONS_RECOVERY_GRACE_SECONDS": "2",
        "AUTOMATIONS_RETRY_SCHEDULE": "1,1,1",
        "AUTOMATIONS_RETRY_JITTER": "0",
        "AUTOMATIONS_WORKER_POLL_INTERVAL": "0.2",
        "AUTOMATIONS_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **env,
    }


class Processes:
    """Subprocesses started by a test, their output in files; whatever is left is killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}-{len(self.procs)}.log", "w")  # noqa: SIM115
        # A session of its own, so that stop_all also ends its children (RQ's scheduler is a forked child that
        # outlives a worker killed with SIGKILL and would keep the test database open).
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {Path(p.log_path).name}\n" + Path(p.log_path).read_text() for p in self.procs)

    def stop_all(self) -> None:
        """SIGKILL: a test's workers leave nothing that must finish."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the process and whatever it forked
        for proc in self.procs:
            proc.wait(timeout=10)


class Workers(Processes):
    """``manage.py automations_worker`` subprocesses on the test database."""

    def start(self, name: str = "w", *args: str, **env: str) -> subprocess.Popen:
        worker_id = f"{name}-{len(self.procs)}"
        argv = [sys.executable, "manage.py", "automations_worker", "--worker-id", worker_id, *args]
        return self.spawn(f"worker-{name}", argv, process_env(**env))


class WebServers(Processes):
    """gunicorn serving the project on the test database, as in production."""

    def stop_all(self) -> None:
        for proc in self.procs:  # SIGTERM: the master stops its workers (a SIGKILL would orphan them)
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def start(self, *, workers: int = 1, **env: str) -> str:
        """A gunicorn instance on a free port; returns its base URL. ``env`` adds to the environment."""
        port = free_port()
        argv = [
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        self.spawn(f"web-{port}", argv, process_env(**{"API_THROTTLE_WRITE": "1000000/min", **env}))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), timeout=30, what=f"gunicorn on port {port}")
        return url


def _answers(url: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of the test's own on a free port (so it can be stopped and started for real)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _answers(f"redis://127.0.0.1:{self.port}"), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None
