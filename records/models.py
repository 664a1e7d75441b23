"""Records (rows of an entity, values in ``data``) and tasks."""

import copy
import uuid

from django.conf import settings
from django.db import models


class Record(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="records")
    entity = models.ForeignKey("workspaces.Entity", on_delete=models.CASCADE, related_name="records")
    data = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["entity", "-created_at"], name="record_entity_created"),
            # Walking an entity's records a page at a time (time-based rules), by id.
            models.Index(fields=["entity", "id"], name="record_entity_id"),
        ]

    def __str__(self) -> str:
        label = (self.data or {}).get("name") or (self.data or {}).get("title")
        return f"{label} ({self.id})" if label else str(self.id)

    # The data as last loaded or saved, so a save can tell what changed (``post_save`` receivers read
    # ``instance.previous_data``; ``None`` means the record is new).
    previous_data: dict | None = None

    @classmethod
    def from_db(cls, db, field_names, values, *, fetch_mode=None):
        instance = super().from_db(db, field_names, values, fetch_mode=fetch_mode)
        if "data" in instance.__dict__:
            instance.previous_data = copy.deepcopy(instance.data)
        return instance

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.previous_data = copy.deepcopy(self.data)

    def as_snapshot(self) -> dict:
        """The record as automations and webhooks see it (the seed's ``record`` object)."""
        return {
            "id": str(self.id),
            "workspace_id": str(self.workspace_id),
            "entity_id": str(self.entity_id),
            "data": self.data,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class Task(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="tasks")
    record = models.ForeignKey(Record, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tasks"
    )
    due_date = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set by the automation engine when a rule created the task (no FK: records never imports automations).
    created_by_rule_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_by_run_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "status", "-created_at"], name="task_ws_status"),
            # create_task finds the task a run's step already made (a retry after a crash makes no second one).
            models.Index(fields=["created_by_run_id"], name="task_created_by_run"),
        ]

    def __str__(self) -> str:
        return self.title
