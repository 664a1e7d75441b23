"""Logs: readable text by default; LOG_FORMAT=json gives one JSON object per line with the request id and the
workspace, rule and run ids where they apply. The request id also comes back as X-Request-ID."""

import json
import logging.config
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from automations.exceptions import PermanentActionError
from automations.models import AutomationLog
from config.logs import logging_config
from records import services
from tests.factories import RecordFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_lines(capsys, settings):
    """Switch this process's logging to ``fmt`` (as LOG_FORMAT would); returns a reader of the lines
    written since."""

    def use(fmt: str):
        settings.LOG_FORMAT = fmt
        logging.config.dictConfig(logging_config(log_format=fmt, level="INFO", automations_level="INFO"))
        capsys.readouterr()
        return lambda: capsys.readouterr().err.splitlines()

    yield use
    logging.config.dictConfig(django_settings.LOGGING)


def json_lines(lines):
    return [json.loads(line) for line in lines]


def test_json_request_lines_carry_the_request_id_and_what_it_is_about(api, owner, entity, make_rule, log_lines):
    read = log_lines("json")
    rule = make_rule()
    url = f"/api/v1/workspaces/{entity.workspace_id}/automations/{rule.pk}/logs/"
    response = api.as_user(owner).get(url, HTTP_X_REQUEST_ID="lb-7f3a9c-0001")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "lb-7f3a9c-0001"

    records = json_lines(read())  # every line is one JSON object
    finished = [r for r in records if r["event"] == "request_finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["request_id"] == "lb-7f3a9c-0001"
    assert line["workspace_id"] == str(entity.workspace_id)
    assert line["rule_id"] == str(rule.pk)
    assert line["code"] == 200 and line["request"] == f"GET {url}"
    assert line["level"] == "info" and line["timestamp"].endswith("Z")
    assert line["user_id"] == owner.pk
    assert "ip" not in line and "Authorization" not in json.dumps(line)


@pytest.mark.parametrize("incoming", ["", "has space", "quote\"'", "x" * 200, "line\nbreak", "ümlaut"])
def test_an_unusable_incoming_request_id_is_replaced(client, db, log_lines, incoming):
    read = log_lines("json")
    extra = {"HTTP_X_REQUEST_ID": incoming} if incoming else {}
    response = client.get("/api/v1/", **extra)
    request_id = response["X-Request-ID"]
    assert request_id != incoming and len(request_id) == 32 and int(request_id, 16) >= 0
    assert {r["request_id"] for r in json_lines(read()) if r["event"].startswith("request_")} == {request_id}


def test_every_response_has_a_request_id(client, db):
    first, second = client.get("/"), client.get("/api/v1/does-not-exist/")
    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]


# The in-process worker closes its connection between batches (close_old_connections), which a
# test transaction does not survive on PostgreSQL: these tests commit for real.
@pytest.mark.django_db(transaction=True)
def test_json_run_lines_carry_the_run_rule_and_workspace(entity, make_rule, scripted, worker, log_lines):
    read = log_lines("json")
    rule = make_rule(name="Welcome")
    scripted.outcomes = [{"ok": True}, PermanentActionError("HTTP 400: bad payload")]
    first = services.record_create(entity=entity, data={"name": "Ada"})
    services.record_create(entity=entity, data={"name": "Grace"})
    worker()

    records = json_lines(read())
    runs = {r["record_id"]: r for r in records if r["event"] == "automation_run"}
    assert len(runs) == 2
    ok = runs[str(first.pk)]
    log = AutomationLog.objects.get(record_id=first.pk)
    assert ok["run_id"] == str(log.pk) and ok["rule_id"] == str(rule.pk) and ok["rule"] == "Welcome"
    assert ok["workspace_id"] == str(entity.workspace_id) and ok["entity_id"] == str(entity.pk)
    assert ok["status"] == "success" and ok["attempt"] == 1 and ok["level"] == "info"
    assert ok["action_type"] == "scripted" and ok["duration_ms"] >= 0 and ok["latency_ms"] >= 0
    assert ok["logger"] == "automations.runs"
    failed = next(r for r in runs.values() if r["status"] == "error")
    assert failed["error"] == "HTTP 400: bad payload" and failed["level"] == "warning"
    # The engine's one-line text report is replaced by these records, not doubled.
    assert not [r for r in records if str(r["event"]).startswith("run ")]


# The in-process worker closes its connection between batches (close_old_connections), which a
# test transaction does not survive on PostgreSQL: these tests commit for real.
@pytest.mark.django_db(transaction=True)
def test_text_is_the_readable_default(entity, make_rule, scripted, worker, log_lines):
    read = log_lines("text")
    make_rule(name="Welcome")
    services.record_create(entity=entity, data={"name": "Ada"})
    worker()
    lines = read()
    report = [line for line in lines if "| rule 'Welcome' |" in line]
    assert len(report) == 1 and ": success |" in report[0] and "[info" in report[0]
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def test_text_logs_requests_only_when_they_fail(client, db, log_lines):
    read = log_lines("text")
    client.get("/api/v1/")
    assert not [line for line in read() if "request_finished" in line]
    client.get("/api/v1/workspaces/", HTTP_X_REQUEST_ID="req-42")  # 401: logged, with its id
    failed = [line for line in read() if "request_finished" in line]
    assert len(failed) == 1 and "request_id=req-42" in failed[0] and "code=401" in failed[0]


SCRIPT = """
import logging, django
django.setup()
logging.getLogger("automations").warning("worker %s stopped", "w-1")
"""


def run_python(script: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_format_comes_from_the_environment():
    as_json = run_python(SCRIPT, LOG_FORMAT="json")
    assert as_json.returncode == 0, as_json.stderr
    (line,) = as_json.stderr.splitlines()
    record = json.loads(line)
    assert record["event"] == "worker w-1 stopped" and record["level"] == "warning"
    assert record["logger"] == "automations" and record["timestamp"]

    as_text = run_python(SCRIPT)
    assert as_text.returncode == 0, as_text.stderr
    (line,) = as_text.stderr.splitlines()
    assert "worker w-1 stopped" in line and "[warning" in line and not line.startswith("{")

    wrong = run_python(SCRIPT, LOG_FORMAT="xml")
    assert wrong.returncode != 0 and "LOG_FORMAT must be one of text, json" in wrong.stderr


def test_record_routes_bind_the_entity(api, owner, entity, log_lines):
    read = log_lines("json")
    record = RecordFactory(entity=entity)
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.pk}/records/{record.pk}/"
    assert api.as_user(owner).get(url).status_code == 200
    (line,) = [r for r in json_lines(read()) if r["event"] == "request_finished"]
    assert line["workspace_id"] == str(entity.workspace_id) and line["entity_id"] == str(entity.pk)
