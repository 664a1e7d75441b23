"""Engine test helpers: a scripted action type, a rule maker, and a real in-process worker loop."""

import pytest
from rest_framework import serializers

from automations.action_types.base import ActionType
from automations.models import AutomationRule
from automations.worker import EngineWorker
from tests.automations.processes import Receiver, WebServers, Workers
from tests.factories import RecordFactory


class AnyConfig(serializers.Serializer):
    """Accepts {"note": str} (and nothing else is required)."""

    note = serializers.CharField(required=False)


class ScriptedAction(ActionType):
    """Test action: each execute() takes the next outcome (a dict result or an exception to raise)."""

    name = "scripted"
    label = "Scripted (tests only)"
    config_serializer = AnyConfig

    def __init__(self):
        self.outcomes = []
        self.calls = []

    def execute(self, ctx):
        self.calls.append(ctx)
        outcome = self.outcomes.pop(0) if self.outcomes else {"ok": True, "attempt": ctx.attempt}
        if callable(outcome) and not isinstance(outcome, dict):
            outcome = outcome(ctx)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def preview(self, ctx):
        return {"would_run": True}


@pytest.fixture
def scripted():
    from automations.action_types import action_types

    action = ScriptedAction()
    action_types.register(action)
    yield action
    action_types.unregister(action.name)


@pytest.fixture
def lead(entity):
    """A typical lead record of ``entity``."""
    return RecordFactory(entity=entity, data={"name": "Ada", "email": "ada@example.com", "status": "New"})


@pytest.fixture
def make_rule(entity):
    def make(**kwargs):
        fields = {
            "workspace": entity.workspace,
            "entity": entity,
            "name": "Rule",
            "trigger_type": "record_created",
            "trigger_config": {},
            "action_type": "scripted",
            "action_config": {},
        }
        fields.update(kwargs)
        return AutomationRule.objects.create(**fields)

    return make


def run_worker():
    """Run the real worker in this process until nothing is due (batch mode): the embedded loop, or with
    ``TASKS_BACKEND=rq`` an RQ worker in burst mode on the local Redis."""
    EngineWorker(interval=0, recovery_interval=None, batch=True, worker_id="test-worker").run()


@pytest.fixture
def worker():
    return run_worker


@pytest.fixture
def receiver():
    """A real HTTP receiver on 127.0.0.1 (threaded; scripted answers per path)."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def workers(tmp_path):
    """Starts ``automations_worker`` subprocesses; kills what is left at the end."""
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def web_servers(tmp_path):
    """Starts gunicorn instances; kills what is left at the end."""
    pool = WebServers(tmp_path)
    yield pool
    pool.stop_all()
