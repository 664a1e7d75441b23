"""manage.py seed_demo: idempotent, password generated once (or DEMO_PASSWORD), the demo rules, and a
re-run on another port moving the demo webhook rule to that port."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from automations.action_types import action_types
from automations.demo import INBOX_PATH
from automations.models import AutomationRule
from records.models import Record
from workspaces.models import Entity, Membership, Role, Workspace

User = get_user_model()


@pytest.fixture
def repo_root(tmp_path, settings):
    settings.BASE_DIR = tmp_path
    settings.DEMO_PASSWORD = ""
    # The demo webhook rule posts to this machine, as under `make run`.
    settings.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    return tmp_path


def run(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts():
    return (
        User.objects.count(),
        Workspace.objects.count(),
        Membership.objects.count(),
        Entity.objects.count(),
        Record.objects.count(),
        AutomationRule.objects.count(),
    )


def webhook_rule() -> AutomationRule:
    return AutomationRule.objects.get(action_type="call_webhook")


def test_seed_demo_is_idempotent_and_reuses_the_password(db, repo_root):
    first = run()
    password = (repo_root / ".demo-password").read_text().strip()
    assert len(password) >= 12
    assert f"demo / {password}" in first
    assert "Home:      http://127.0.0.1:8000/\n" in first
    for url in (
        "http://127.0.0.1:8000/admin/",
        "http://127.0.0.1:8000/api/v1/",
        "http://127.0.0.1:8000/api/v1/docs/",
        "http://127.0.0.1:8000/api/v1/redoc/",
    ):
        assert url in first
    before = counts()
    assert before == (1, 1, 1, 1, 5, len(action_types.names()))

    second = run("--base-url", "http://127.0.0.1:9000/")
    assert counts() == before
    assert f"demo / {password}" in second and "http://127.0.0.1:9000/admin/" in second

    user = User.objects.get(username="demo")
    assert user.is_staff and user.is_superuser and user.check_password(password)
    workspace = Workspace.objects.get()
    assert workspace.name == "Demo workspace"
    assert Membership.objects.get(user=user).role == Role.OWNER
    entity = Entity.objects.get()
    assert entity.name == "Leads" and entity.status_field == "status"
    assert [f["name"] for f in entity.fields] == ["name", "email", "company", "status", "amount"]
    assert entity.field("status")["options"] == ["New", "Contacted", "Qualified", "Closed Won", "Closed Lost"]
    assert entity.field("name")["required"] is True
    assert all(r.created_by == user for r in Record.objects.all())


def test_demo_password_env_overrides(db, repo_root, settings):
    run()
    settings.DEMO_PASSWORD = "Env-Chosen-Password-1"
    output = run()
    assert "demo / Env-Chosen-Password-1" in output
    assert User.objects.get(username="demo").check_password("Env-Chosen-Password-1")


def test_one_active_demo_rule_per_action_type_on_the_leads_entity(db, repo_root):
    run("--base-url", "http://127.0.0.1:8123")
    rules = AutomationRule.objects.filter(entity__slug="leads", is_active=True)
    assert sorted(rules.values_list("action_type", flat=True)) == sorted(action_types.names())
    assert webhook_rule().action_config["url"] == "http://127.0.0.1:8123" + INBOX_PATH


def test_base_url_default_comes_from_settings(db, repo_root, settings):
    # `make run` records its base URL in .env (DEMO_BASE_URL), so a plain `manage.py seed_demo` matches it.
    settings.DEMO_BASE_URL = "http://127.0.0.1:8124"
    assert "http://127.0.0.1:8124/admin/" in run()
    assert webhook_rule().action_config["url"] == "http://127.0.0.1:8124" + INBOX_PATH


def test_rerun_on_another_port_moves_the_webhook_rule_without_duplicating(db, repo_root):
    run("--base-url", "http://127.0.0.1:8000")
    rule = webhook_rule()
    rule.action_config = {**rule.action_config, "headers": {"X-Demo": "kept"}}
    rule.save(update_fields=["action_config"])
    before, secret = counts(), rule.signing_secret

    output = run("--base-url", "http://127.0.0.1:9000/")

    assert counts() == before
    rule = webhook_rule()
    assert rule.action_config["url"] == "http://127.0.0.1:9000" + INBOX_PATH
    assert rule.action_config["headers"] == {"X-Demo": "kept"}  # only the URL follows the port
    assert rule.is_active and rule.signing_secret == secret  # the same rule, not a new one
    assert "Notify the inbox when a deal is won" in output and "http://127.0.0.1:9000" + INBOX_PATH in output


def test_a_webhook_rule_pointed_elsewhere_is_left_alone(db, repo_root):
    run("--base-url", "http://127.0.0.1:8000")
    rule = webhook_rule()
    rule.action_config = {**rule.action_config, "url": "http://127.0.0.1:7000/my-own-receiver/"}
    rule.save(update_fields=["action_config"])
    run("--base-url", "http://127.0.0.1:9000")
    assert webhook_rule().action_config["url"] == "http://127.0.0.1:7000/my-own-receiver/"


def test_without_the_allowed_host_it_says_how_to_fix_it(db, repo_root, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(CommandError, match="AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS") as error:
        run("--base-url", "http://127.0.0.1:8000")
    assert "127.0.0.1 is private" in str(error.value)
    settings.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    run("--base-url", "http://127.0.0.1:8000")  # then a re-run completes the demo
    assert AutomationRule.objects.count() == len(action_types.names())
