"""``manage.py test_automation``: readable and JSON output, exit codes, side effects."""

import json
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from automations import services
from automations.models import AutomationLog
from records.models import Task
from tests.factories import EntityFactory, MembershipFactory, RecordFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def task_rule(entity):
    return services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Follow up",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "Call {{name}}"},
    )


@pytest.fixture
def email_rule(entity):
    return services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Welcome",
        trigger_type="record_created",
        action_type="send_email",
        action_config={"subject": "Welcome {{name}}!", "body": "Hi {{name}},\nthanks."},
    )


def run(*args) -> str:
    out = StringIO()
    call_command("test_automation", *[str(a) for a in args], stdout=out, no_color=True)
    return out.getvalue()


def test_real_run_prints_what_the_action_did(task_rule, lead):
    output = run(task_rule.pk, "--record", lead.pk)
    assert 'Automation "Follow up"' in output
    assert "Trigger:    matches" in output
    assert "Conditions: no conditions" in output
    assert "title: Call Ada" in output
    assert output.rstrip().endswith("OK")
    task = Task.objects.get()
    assert task.title == "Call Ada"
    log = AutomationLog.objects.get()
    assert log.is_test and str(log.pk) in output


def test_dry_run_prints_the_email_and_does_nothing(email_rule, lead):
    output = run(email_rule.pk, "--record", lead.pk, "--dry-run")
    assert "Dry run: nothing was sent, written or logged" in output
    assert "to: ada@example.com" in output
    assert "subject: Welcome Ada!" in output
    assert "    Hi Ada," in output and "    thanks." in output
    assert mail.outbox == []
    assert not AutomationLog.objects.exists()


def test_json_output_is_machine_readable(email_rule, lead):
    payload = json.loads(run(email_rule.pk, "--record", lead.pk, "--json"))
    assert payload["ok"] is True
    assert payload["automation_id"] == str(email_rule.pk)
    assert payload["record_id"] == str(lead.pk)
    assert payload["success"] is True and payload["dry_run"] is False
    assert payload["result"]["recipient"] == "ada@example.com"
    assert len(mail.outbox) == 1

    payload = json.loads(run(email_rule.pk, "--record", lead.pk, "--json", "--dry-run"))
    assert payload["ok"] is True and payload["dry_run"] is True and payload["preview"]["subject"] == "Welcome Ada!"
    assert len(mail.outbox) == 1


def test_conditions_that_do_not_match_are_reported(entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Big",
        trigger_type="record_created",
        conditions={"match": "all", "rules": [{"field": "amount", "op": "gte", "value": 1000}]},
        action_type="create_task",
        action_config={"title": "x"},
    )
    assert "Conditions: does not match" in run(rule.pk, "--record", lead.pk, "--dry-run")


def test_a_failing_action_exits_non_zero_with_the_reason(email_rule, entity):
    record = RecordFactory(entity=entity, data={"name": "No Mail"})
    with pytest.raises(CommandError) as excinfo:
        run(email_rule.pk, "--record", record.pk)
    assert excinfo.value.returncode == 1
    assert str(excinfo.value).startswith("The action failed: No recipient")
    assert "\n" not in str(excinfo.value)
    with pytest.raises(CommandError, match="would fail"):
        run(email_rule.pk, "--record", record.pk, "--dry-run", "--json")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_rule", "No automation with id"),
        ("unknown_record", "No record with id"),
        ("bad_rule_uuid", "is not a valid automation id"),
        ("bad_record_uuid", "is not a valid record id"),
        ("other_entity", "does not belong to this rule's entity"),
        ("other_workspace", "does not belong to this rule's entity"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(task_rule, lead, case, message):
    rule_id, record_id = str(task_rule.pk), str(lead.pk)
    if case == "unknown_rule":
        rule_id = str(uuid.uuid4())
    elif case == "unknown_record":
        record_id = str(uuid.uuid4())
    elif case == "bad_rule_uuid":
        rule_id = "nope"
    elif case == "bad_record_uuid":
        record_id = "12"
    elif case == "other_entity":
        record_id = str(RecordFactory(entity=EntityFactory(workspace=task_rule.workspace)).pk)
    elif case == "other_workspace":
        other = EntityFactory(workspace=MembershipFactory().workspace)
        record_id = str(RecordFactory(entity=other).pk)
    with pytest.raises(CommandError) as excinfo:
        run(rule_id, "--record", record_id)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert excinfo.value.returncode == 1
    assert not AutomationLog.objects.exists() and not Task.objects.exists()


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (["not-a-uuid", "--record", str(uuid.uuid4())], 1, "CommandError: 'not-a-uuid' is not a valid automation id"),
        ([str(uuid.uuid4())], 2, "the following arguments are required: --record"),
    ],
)
def test_exit_codes_from_the_shell(args, code, stderr):
    """Argument errors are found before the database is touched, so a real process shows the exit code."""
    proc = subprocess.run(
        [sys.executable, "manage.py", "test_automation", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == code
    assert stderr in proc.stderr.strip().splitlines()[-1]  # the reason is the last line


def run_json(*args) -> tuple[dict, CommandError | None]:
    """The command's JSON output and the error it ended with (None on success)."""
    out = StringIO()
    error = None
    try:
        call_command("test_automation", *[str(a) for a in args], "--json", stdout=out, no_color=True)
    except CommandError as exc:
        error = exc
    return json.loads(out.getvalue()), error


@pytest.mark.parametrize(
    ("rule_id", "record_id", "message"),
    [
        ("nope", "LEAD", "'nope' is not a valid automation id (expected a UUID)."),
        ("RULE", "12", "'12' is not a valid record id (expected a UUID)."),
        (str(uuid.UUID(int=1)), "LEAD", f"No automation with id {uuid.UUID(int=1)}."),
        ("RULE", str(uuid.UUID(int=2)), f"No record with id {uuid.UUID(int=2)}."),
        ("RULE", "OTHER", "The record does not belong to this rule's entity."),
    ],
)
def test_json_errors_are_json_with_a_non_zero_exit(task_rule, lead, entity, rule_id, record_id, message):
    other = RecordFactory(entity=EntityFactory(workspace=entity.workspace))
    names = {"RULE": str(task_rule.pk), "LEAD": str(lead.pk), "OTHER": str(other.pk)}
    payload, error = run_json(names.get(rule_id, rule_id), "--record", names.get(record_id, record_id))
    assert payload == {"ok": False, "error": message}
    assert error is not None and error.returncode == 1
    assert not AutomationLog.objects.exists()


def test_json_of_a_failing_action_says_ok_false_with_the_result(email_rule, entity):
    record = RecordFactory(entity=entity, data={"name": "No Mail"})
    payload, error = run_json(email_rule.pk, "--record", record.pk)
    assert payload["ok"] is False and payload["success"] is False
    assert payload["error"].startswith("No recipient") and payload["log_id"]
    assert error is not None and error.returncode == 1


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["not-a-uuid", "--record", str(uuid.uuid4())], 1, "'not-a-uuid' is not a valid automation id"),
        ([str(uuid.uuid4())], 2, "the following arguments are required: --record"),
    ],
)
def test_json_errors_from_the_shell(args, code, error):
    proc = subprocess.run(
        [sys.executable, "manage.py", "test_automation", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and error in payload["error"]


def test_a_rule_with_steps_is_previewed_and_run_step_by_step(entity):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Onboarding",
        trigger_type="record_created",
        steps=[
            {"type": "update_field", "config": {"field_name": "company", "new_value": "ACME"}},
            {"type": "create_task", "config": {"title": "Call {{ name }} at {{ company }}"}},
            {"type": "delay", "config": {"seconds": 60}},
            {"type": "create_task", "config": {"title": "Again"}},
        ],
    )
    record = RecordFactory(entity=entity, data={"name": "Ada"})
    preview = run(rule.pk, "--record", record.pk, "--dry-run")
    assert "and then create_task" in preview and "Step 3: delay" in preview and "resume_at" in preview
    assert "Call Ada at ACME" in preview and not Task.objects.exists()
    done = run(rule.pk, "--record", record.pk)
    assert "Step 1: update_field, success" in done and "Step 2: create_task, success" in done
    assert "Step 3: delay, waiting" in done and "waits on a delay" in done
    assert Task.objects.get().title == "Call Ada at ACME"
    payload = json.loads(run(rule.pk, "--record", record.pk, "--dry-run", "--json"))
    assert [step["type"] for step in payload["steps"]] == ["update_field", "create_task", "delay", "create_task"]
