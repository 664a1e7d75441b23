"""``create_task``: a real ``records.Task`` linked to the record and the rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers

from records.models import Record, Task
from records.services import task_create, task_step_state

from ..context import RunContext
from ..exceptions import PermanentActionError
from ..templating import render
from .base import ActionType
from .fields import TemplateField

TITLE_MAX = Task._meta.get_field("title").max_length


def find_member(workspace_id, identifier: str):
    """The workspace member whose username or email is ``identifier`` (case-insensitive), or None."""
    identifier = identifier.strip()
    if not identifier:
        return None
    return (
        get_user_model()
        .objects.filter(memberships__workspace_id=workspace_id)
        .filter(Q(username__iexact=identifier) | Q(email__iexact=identifier))
        .order_by("pk")
        .first()
    )


class CreateTaskConfigSerializer(serializers.Serializer):
    title = TemplateField(mode="text", max_length=2_000)
    description = TemplateField(mode="text", required=False, allow_blank=True, max_length=100_000)
    due_in_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=3650)
    assignee = serializers.CharField(required=False, allow_blank=True, max_length=254)

    def validate_assignee(self, value: str) -> str:
        entity = self.context.get("entity")
        if value and entity is not None and find_member(entity.workspace_id, value) is None:
            raise serializers.ValidationError(f"'{value}' is not a member of this workspace (username or email).")
        return value


class CreateTask(ActionType):
    """Create a task (the seed's ``create_task``), as a real ``Task`` in the workspace.

    Config: ``title`` and ``description`` templates, ``due_in_days`` (due date = today + N), ``assignee``
    (username or email of a workspace member). The task links to the record while it exists and
    records the rule and run (``created_by_rule_id``, ``created_by_run_id``); a retry of the same run
    returns the task it already created instead of creating a second one.

    Result: ``{"task_id", "title", "description", "record_id", "due_date", "assignee"}``.
    """

    name = "create_task"
    label = "Create task"
    config_serializer = CreateTaskConfigSerializer

    def build(self, ctx: RunContext) -> dict[str, Any]:
        """The task's rendered fields (no writes)."""
        config = ctx.config or {}
        variables = ctx.template_variables()
        title = " ".join(render(config.get("title", ""), variables, mode="text").split())[:TITLE_MAX]
        if not title:
            raise PermanentActionError("The task title rendered empty.")
        description = render(config.get("description") or "", variables, mode="text")
        due_in_days = config.get("due_in_days")
        due_date = timezone.localdate() + dt.timedelta(days=int(due_in_days)) if due_in_days is not None else None
        assignee = None
        if config.get("assignee"):
            assignee = find_member(ctx.rule.workspace_id, config["assignee"])
            if assignee is None:
                raise PermanentActionError(f"The assignee '{config['assignee']}' is no longer a workspace member.")
        return {"title": title, "description": description, "due_date": due_date, "assignee": assignee}

    @staticmethod
    def _result(task: Task) -> dict[str, Any]:
        return {
            "task_id": str(task.id),
            "title": task.title,
            "description": task.description,
            "record_id": str(task.record_id) if task.record_id else None,
            "due_date": task.due_date.isoformat() if task.due_date else None,
            "assignee": task.assignee.get_username() if task.assignee_id else None,
        }

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        run_id = ctx.step_run_id
        with transaction.atomic():
            existing, record_exists = task_step_state(run_id=run_id, record_id=ctx.record_id)
            if existing is not None:  # this step of this run already created its task (a retry after a crash)
                return self._result(existing)
            fields = self.build(ctx)
            record = Record(pk=ctx.record_id) if record_exists else None  # linked by id: no need to load it
            task = task_create(
                workspace=ctx.rule.workspace_id,
                title=fields["title"],
                description=fields["description"],
                due_date=fields["due_date"],
                assignee=fields["assignee"],
                record=record,
                actor=None,
                created_by_rule_id=ctx.rule.id,
                created_by_run_id=run_id,
            )
        return self._result(task)

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        fields = self.build(ctx)
        return {
            "title": fields["title"],
            "description": fields["description"],
            "due_date": fields["due_date"].isoformat() if fields["due_date"] else None,
            "assignee": fields["assignee"].get_username() if fields["assignee"] else None,
            "record_id": ctx.record_id,
        }
