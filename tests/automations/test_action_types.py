"""Action types against real parts: Django's mail outbox and anymail's test backend, the database for
field updates and tasks. One parametrized test covers every registered action type."""

import datetime as dt
import socket

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from django.utils import timezone
from django.utils.safestring import SafeString

from automations.action_types import action_types
from automations.context import RunContext
from automations.exceptions import ConfigInvalid, PermanentActionError, RetryableActionError, TemplateRenderError
from automations.models import AutomationLog
from records.models import Record, Task
from tests.factories import AutomationRuleFactory, EntityFactory, MembershipFactory, RecordFactory

pytestmark = pytest.mark.django_db


def make_ctx(action_type, config, *, data=None, log=True, record=None, entity=None):
    record = record or RecordFactory(
        entity=entity or EntityFactory(),
        data=data if data is not None else {"name": "Ada", "email": "ada@example.com", "status": "New"},
    )
    rule = AutomationRuleFactory(entity=record.entity, action_type=action_type, action_config=config)
    run = None
    if log:
        run = AutomationLog.objects.create(
            automation=rule,
            workspace_id=rule.workspace_id,
            entity_id=rule.entity_id,
            record_id=record.id,
            record_snapshot=record.as_snapshot(),
            trigger_type=rule.trigger_type,
            action_type=action_type,
            event_type="updated",
        )
    return RunContext(rule=rule, entity=record.entity, record=record.as_snapshot(), event_type="updated", log=run)


# --------------------------------------------------------------------------- every action type

GOOD_AND_BAD = {
    "send_email": (
        {"subject": "Welcome {{name}}!", "body": "Hi {{name}},\nthanks."},
        {"subject": "Hi {{ name", "body": "x"},
    ),
    "call_webhook": (
        {"url": "http://127.0.0.1:9/hook", "method": "POST", "headers": {"X-Api-Key": "k"}},
        {"url": "ftp://example.com/", "method": "GET"},
    ),
    "update_field": ({"field_name": "status", "new_value": "Contacted"}, {"field_name": "nope", "new_value": "x"}),
    "create_task": ({"title": "Follow up with {{name}}", "due_in_days": 2}, {"title": "", "due_in_days": -1}),
}


def test_every_registered_action_type_is_covered():
    assert set(action_types.names()) == set(GOOD_AND_BAD)


@pytest.mark.parametrize("name", sorted(GOOD_AND_BAD))
def test_action_type_contract(name, settings, mailoutbox, monkeypatch):
    """Config validation accepts a good config and rejects a bad one; preview has no side effects."""
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    action = action_types.get(name)
    assert action.name == name and action.label and action.__doc__
    good, bad = GOOD_AND_BAD[name]
    entity = EntityFactory()
    assert isinstance(action.validate_config(good, entity=entity), dict)
    with pytest.raises(ConfigInvalid):
        action.validate_config(bad, entity=entity)
    with pytest.raises(ConfigInvalid):
        action.validate_config("not an object", entity=entity)

    connects = []
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connects.append(address))
    ctx = make_ctx(name, action.validate_config(good, entity=entity), entity=entity, log=False)
    before = (Record.objects.get(pk=ctx.record_id).data, Task.objects.count(), AutomationLog.objects.count())
    preview = action.preview(ctx)
    assert isinstance(preview, dict) and preview
    assert (Record.objects.get(pk=ctx.record_id).data, Task.objects.count(), AutomationLog.objects.count()) == before
    assert mailoutbox == []
    assert connects == []

    # The run page shows a result as the type describes it: escaped, whatever the receiver answered.
    hostile = {key: "<script>x</script>" for key in [*preview, "response", "recipient", "subject", "url"]}
    for result in (hostile, None, {}):
        html = action.describe_result(result)
        assert "<script>" not in html
    assert isinstance(action.describe_result(hostile), SafeString)
    assert "&lt;script&gt;x&lt;/script&gt;" in action.describe_result(hostile)


# --------------------------------------------------------------------------- send_email


def test_send_email_to_the_record_email_with_html_and_text(mailoutbox):
    ctx = make_ctx(
        "send_email",
        {"subject": "Welcome {{name}}!", "body": "Hi {{name}},\n\nYour status is {{status}}."},
        data={"name": "<script>alert(1)</script> & co", "email": "ada@example.com", "status": "New"},
    )
    result = action_types.get("send_email").execute(ctx)

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ada@example.com"]
    assert message.subject == "Welcome <script>alert(1)</script> & co!"
    assert message.body == "Hi <script>alert(1)</script> & co,\n\nYour status is New."  # the plain-text part
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "<script>" not in html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; co,<br>" in html
    assert "Your status is New." in html
    assert ctx.rule.name in html  # the layout wraps the body
    assert result["recipient"] == "ada@example.com"
    assert result["subject"] == message.subject
    assert result["sent"] is True
    assert result["message_id"] == message.extra_headers["Message-ID"]


def test_send_email_to_email_overrides_and_may_be_a_template(mailoutbox):
    ctx = make_ctx("send_email", {"subject": "s", "body": "b", "to_email": "sales+{{ status|lower }}@example.com"})
    assert action_types.get("send_email").execute(ctx)["recipient"] == "sales+new@example.com"
    assert mailoutbox[0].to == ["sales+new@example.com"]


@pytest.mark.parametrize(
    "address",
    ["a@example.com, b@example.com", "a@example.com;b@example.com", "Ada <a@example.com>", "a@example.com\nBcc: x@y.z"],
)
def test_send_email_refuses_lists_and_header_tricks(address, mailoutbox):
    action = action_types.get("send_email")
    with pytest.raises(ConfigInvalid):
        action.validate_config({"subject": "s", "body": "b", "to_email": address})
    ctx = make_ctx("send_email", {"subject": "s", "body": "b"}, data={"name": "Ada", "email": address})
    with pytest.raises(PermanentActionError, match="recipient"):
        action.execute(ctx)
    assert mailoutbox == []


def test_send_email_refuses_line_breaks_in_the_subject(mailoutbox):
    ctx = make_ctx(
        "send_email",
        {"subject": "Hello {{name}}", "body": "b"},
        data={"name": "Ada\r\nBcc: victim@example.com", "email": "ada@example.com"},
    )
    with pytest.raises(TemplateRenderError, match="line break"):
        action_types.get("send_email").execute(ctx)
    assert mailoutbox == []


def test_send_email_without_a_recipient_fails_permanently(mailoutbox):
    ctx = make_ctx("send_email", {"subject": "s", "body": "b"}, data={"name": "Ada"})
    with pytest.raises(PermanentActionError, match="No recipient"):
        action_types.get("send_email").execute(ctx)


class ScriptedProviderBackend(AnymailTestBackend):
    """anymail's test backend answering with ``response`` (an error to raise, or None for success)."""

    response = None

    def post_to_esp(self, payload, message):
        if self.response is not None:
            message.anymail_test_response = self.response
        return super().post_to_esp(payload, message)


@pytest.fixture
def provider(settings):
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.ScriptedProviderBackend"}}
    yield ScriptedProviderBackend
    ScriptedProviderBackend.response = None


def test_send_email_through_an_anymail_provider(provider, mailoutbox):
    ctx = make_ctx("send_email", {"subject": "Hi {{name}}", "body": "Hello\n{{name}}"})
    result = action_types.get("send_email").execute(ctx)
    params = mailoutbox[0].anymail_test_params
    assert params["subject"] == "Hi Ada"
    assert [str(a) for a in params["to"]] == ["ada@example.com"]
    assert params["text_body"] == "Hello\nAda"
    assert "Hello<br>" in params["html_body"]
    assert result["message_id"] == "0"  # the test provider's message id


REJECTED = {"recipient_status": {"ada@example.com": AnymailRecipientStatus(message_id=None, status="rejected")}}


@pytest.mark.parametrize(
    ("response", "expected", "text"),
    [
        (AnymailAPIError("Rate limited", status_code=429), RetryableActionError, "Rate limited"),
        (AnymailAPIError("Service unavailable", status_code=503), RetryableActionError, "Service unavailable"),
        (AnymailAPIError("Invalid API key", status_code=401), PermanentActionError, "Invalid API key"),
        (AnymailAPIError("Malformed from address", status_code=400), PermanentActionError, "Malformed from"),
        (REJECTED, PermanentActionError, "refused the recipient"),
    ],
)
def test_provider_errors_are_classified_with_the_providers_message(provider, response, expected, text):
    provider.response = response
    ctx = make_ctx("send_email", {"subject": "s", "body": "b"})
    with pytest.raises(expected) as info:
        action_types.get("send_email").execute(ctx)
    assert type(info.value) is expected
    assert text in info.value.message


def test_send_email_preview(mailoutbox):
    ctx = make_ctx(
        "send_email", {"subject": "Hi {{name}}", "body": "<b>{{name}}</b>"}, data={"name": "<i>", "email": "a@b.co"}
    )
    preview = action_types.get("send_email").preview(ctx)
    assert preview["to"] == "a@b.co"
    assert preview["subject"] == "Hi <i>"
    assert "<b>&lt;i&gt;</b>" in preview["html"]
    assert preview["text"] == "<b><i></b>"
    assert mailoutbox == []


# --------------------------------------------------------------------------- update_field


def test_update_field_writes_through_the_record_service():
    ctx = make_ctx("update_field", {"field_name": "status", "new_value": "Contacted"})
    result = action_types.get("update_field").execute(ctx)
    assert result == {"field_name": "status", "old_value": "New", "new_value": "Contacted", "changed": True}
    record = Record.objects.get(pk=ctx.record_id)
    assert record.data["status"] == "Contacted"
    assert record.data["name"] == "Ada"  # merged, not replaced


def test_update_field_is_a_no_op_when_unchanged():
    ctx = make_ctx("update_field", {"field_name": "status", "new_value": "New"})
    before = Record.objects.get(pk=ctx.record_id).updated_at
    result = action_types.get("update_field").execute(ctx)
    assert result["changed"] is False and result["old_value"] == result["new_value"] == "New"
    assert Record.objects.get(pk=ctx.record_id).updated_at == before


def test_update_field_renders_and_cleans_by_field_type():
    ctx = make_ctx(
        "update_field",
        {"field_name": "amount", "new_value": "{{ amount * 2 }}"},
        data={"name": "Ada", "amount": 21},
    )
    result = action_types.get("update_field").execute(ctx)
    assert result["new_value"] == 42 and isinstance(result["new_value"], int)
    assert Record.objects.get(pk=ctx.record_id).data["amount"] == 42


def test_update_field_rejects_values_the_field_type_refuses():
    action = action_types.get("update_field")
    entity = EntityFactory()
    with pytest.raises(ConfigInvalid):
        action.validate_config({"field_name": "status", "new_value": "Maybe"}, entity=entity)
    ctx = make_ctx("update_field", {"field_name": "status", "new_value": "{{ name }}"})
    with pytest.raises(PermanentActionError, match="invalid"):
        action.execute(ctx)
    assert Record.objects.get(pk=ctx.record_id).data["status"] == "New"


def test_update_field_on_a_deleted_record_fails_permanently():
    ctx = make_ctx("update_field", {"field_name": "status", "new_value": "Contacted"})
    Record.objects.filter(pk=ctx.record_id).delete()
    with pytest.raises(PermanentActionError, match="no longer exists"):
        action_types.get("update_field").execute(ctx)


def test_update_field_preview_is_a_diff():
    ctx = make_ctx("update_field", {"field_name": "status", "new_value": "Qualified"}, log=False)
    assert action_types.get("update_field").preview(ctx) == {
        "field_name": "status",
        "old_value": "New",
        "new_value": "Qualified",
        "changed": True,
    }
    assert Record.objects.get(pk=ctx.record_id).data["status"] == "New"


# --------------------------------------------------------------------------- create_task


def test_create_task_creates_a_linked_task():
    ctx = make_ctx(
        "create_task", {"title": "Follow up with {{name}}", "description": "Status: {{status}}", "due_in_days": 3}
    )
    result = action_types.get("create_task").execute(ctx)
    task = Task.objects.get(pk=result["task_id"])
    assert task.title == "Follow up with Ada"
    assert task.description == "Status: New"
    assert str(task.record_id) == ctx.record_id
    assert task.workspace_id == ctx.rule.workspace_id
    assert task.created_by_rule_id == ctx.rule.id
    assert task.created_by_run_id == ctx.log.id
    assert task.due_date == timezone.localdate() + dt.timedelta(days=3)
    assert result["title"] == task.title and result["description"] == task.description
    assert result["record_id"] == ctx.record_id


def test_create_task_is_idempotent_per_run():
    ctx = make_ctx("create_task", {"title": "Call {{name}}"})
    action = action_types.get("create_task")
    first = action.execute(ctx)
    second = action.execute(ctx)  # a retry of the same run
    assert first == second
    assert Task.objects.filter(created_by_rule_id=ctx.rule.id).count() == 1


def test_create_task_for_a_deleted_record_is_unlinked():
    ctx = make_ctx("create_task", {"title": "Archive {{name}}"})
    Record.objects.filter(pk=ctx.record_id).delete()
    result = action_types.get("create_task").execute(ctx)
    assert result["record_id"] is None
    assert Task.objects.get(pk=result["task_id"]).title == "Archive Ada"


def test_create_task_assignee_must_be_a_member():
    action = action_types.get("create_task")
    entity = EntityFactory()
    member = MembershipFactory(workspace=entity.workspace).user
    outsider = MembershipFactory().user
    assert action.validate_config({"title": "t", "assignee": member.email}, entity=entity)
    with pytest.raises(ConfigInvalid, match="not a member"):
        action.validate_config({"title": "t", "assignee": outsider.username}, entity=entity)
    ctx = make_ctx("create_task", {"title": "t", "assignee": member.username}, entity=entity)
    result = action.execute(ctx)
    assert Task.objects.get(pk=result["task_id"]).assignee == member
