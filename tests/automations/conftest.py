"""Engine test helpers: a scripted action type, a rule maker, and a real in-process worker loop."""

import pytest
from rest_framework import serializers

from automations.action_types.base import ActionType
from automations.models import AutomationRule
from automations.worker import EngineWorker
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
    """Run the real worker loop in this process until nothing is due (batch mode); returns the number of
    runs it executed."""
    worker = EngineWorker(interval=0, recovery_interval=None, batch=True, worker_id="test-worker")
    worker.run()
    return worker.executed


@pytest.fixture
def worker():
    return run_worker
