"""Automation rules, the events they react to, and the run log (the seed's ``automation_rules`` and
``automation_logs``, plus what a durable engine needs)."""

import base64
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class AutomationRule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="automations")
    entity = models.ForeignKey("workspaces.Entity", on_delete=models.CASCADE, related_name="automations")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    trigger_type = models.CharField(max_length=50)
    trigger_config = models.JSONField(default=dict, blank=True)
    # {"match": "all"|"any", "rules": [{"field", "op", "value"} | nested group, ...]}; {} = always.
    conditions = models.JSONField(default=dict, blank=True)
    # What the rule does, in order: [{"type": <action type or "delay">, "config": {...}}, ...] (1 to 20).
    steps = models.JSONField(default=list, blank=True)
    # The first step, kept in the seed's columns (list filters, clients of the single-action API).
    action_type = models.CharField(max_length=50)
    action_config = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    # 1 at creation, +1 for every change (``RuleVersion`` keeps each one).
    version = models.PositiveIntegerField(default=1)

    signing_secret = models.CharField(max_length=100, default=new_signing_secret)
    # After a rotation the old secret keeps signing (a second signature) until it expires.
    previous_signing_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)

    # Optional per-rule throttle (runs over it wait in the queue, never dropped).
    max_runs_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_runs_per_hour = models.PositiveIntegerField(null=True, blank=True)

    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The worker's lookup: active rules of an entity for the trigger types of one event.
            models.Index(
                fields=["entity", "trigger_type"], condition=Q(is_active=True), name="rule_active_entity_trigger"
            ),
            models.Index(fields=["workspace", "-created_at"], name="rule_workspace_created"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def step_list(self) -> list[dict]:
        """The rule's steps; a rule saved before steps existed has its single action as the one step."""
        return self.steps or [{"type": self.action_type, "config": self.action_config or {}}]


class RuleVersion(models.Model):
    """One version of a rule: who made it, when, which fields changed, and the whole rule as it was then.
    Runs record the version they started with and execute its steps, whatever happens to the rule."""

    rule = models.ForeignKey(AutomationRule, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changes = models.JSONField(default=list, blank=True, help_text="Names of the fields this version changed.")
    snapshot = models.JSONField(help_text="The rule's editable fields as this version has them.")

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["rule", "version"], name="uniq_rule_version")]

    def __str__(self) -> str:
        return f"{self.rule_id} v{self.version}"


class EventType(models.TextChoices):
    CREATED = "created", "Record created"
    UPDATED = "updated", "Record updated"
    DELETED = "deleted", "Record deleted"
    TIME = "time", "Time reached"


class AutomationEvent(models.Model):
    """A record change, captured in the same transaction as the write (the durable hand-off between the
    write path and the worker). Processing it matches rules and creates one log row per matching rule."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=10, choices=EventType.choices)
    workspace_id = models.UUIDField()
    entity_id = models.UUIDField()
    record_id = models.UUIDField()
    record = models.JSONField(help_text="Snapshot of the record after the change (before, for deletes).")
    old_data = models.JSONField(null=True, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    # Rule ids whose runs led to this change (loop guard) and its length.
    chain = models.JSONField(default=list, blank=True)
    chain_depth = models.PositiveSmallIntegerField(default=0)
    batch_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set in the same transaction that logs the event's runs: an event is either waiting (NULL) or done.
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(processed_at__isnull=True), name="event_unprocessed"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.record_id}"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    SKIPPED = "skipped", "Skipped"


class AutomationLog(models.Model):
    """One run of one rule for one event: the durable ledger (status, attempts, schedule, lease, result)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(AutomationRule, on_delete=models.CASCADE, related_name="logs")
    event = models.ForeignKey(AutomationEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    workspace_id = models.UUIDField()
    entity_id = models.UUIDField()
    # Kept as plain values so the log survives the record's deletion.
    record_id = models.UUIDField(null=True, blank=True)
    record_snapshot = models.JSONField(default=dict, blank=True)
    old_data = models.JSONField(null=True, blank=True)
    event_type = models.CharField(max_length=10, choices=EventType.choices, blank=True, default="")
    trigger_type = models.CharField(max_length=50)
    action_type = models.CharField(max_length=50)

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    # When a waiting run (pending / retrying) is due; always set while it waits.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A running run is held by one worker process until ``lease_until``; another worker may take it over
    # when the lease expires or when that worker's heartbeat stops (``WorkerProcess``).
    lease_until = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    # The rule version the run started with (its steps are the ones executed), the step it is at, and each
    # step's own ledger ([{"index", "type", "status", "attempts", "started_at", "finished_at", "result",
    # "error"}, ...]; NULL for a run of a one-step rule, whose only step is the run itself).
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    # Time-based triggers: the occurrence (scheduled) or due time (date_reached) this run is for; one run per
    # (rule, record, due time), whatever the number of workers.
    due_at = models.DateTimeField(null=True, blank=True)
    current_step = models.PositiveSmallIntegerField(default=0)
    step_states = models.JSONField(null=True, blank=True)
    # Manual replays: [{"at", "by" (user id), "from_step"}, ...]
    replays = models.JSONField(default=list, blank=True)

    is_test = models.BooleanField(default=False)
    chain = models.JSONField(default=list, blank=True)
    chain_depth = models.PositiveSmallIntegerField(default=0)
    batch_id = models.UUIDField(null=True, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["automation", "-created_at"], name="log_rule_created"),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "running", "retrying"]),
                name="log_open_due",
            ),
            models.Index(fields=["worker_id"], condition=Q(status="running"), name="log_running_worker"),
            models.Index(fields=["lease_until"], condition=Q(status="running"), name="log_running_lease"),
            models.Index(fields=["record_id"], name="log_record"),
            models.Index(fields=["batch_id"], condition=Q(batch_id__isnull=False), name="log_batch"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "automation"], condition=Q(event__isnull=False), name="uniq_run_per_event_rule"
            ),
            models.UniqueConstraint(
                fields=["automation", "record_id", "due_at"],
                condition=Q(due_at__isnull=False, is_test=False),
                name="uniq_run_per_due_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.automation_id} {self.status} {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def delivery_id(self) -> str:
        """Stable across retries: the webhook-id / idempotency key of this run."""
        return f"msg_{self.id.hex}"

    STEP_STATUS = {"retrying": "pending"}  # a one-step run waiting for its retry: its step is pending again

    @property
    def step_ledger(self) -> list[dict]:
        """Each step's status, attempts, times, result and error; a one-step run's only step is the run."""
        if self.step_states:
            return self.step_states
        iso = lambda moment: moment.isoformat() if moment else None  # noqa: E731
        return [
            {
                "index": 0,
                "type": self.action_type,
                "status": self.STEP_STATUS.get(self.status, self.status),
                "attempts": self.attempts,
                "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at),
                "result": self.result,
                "error": self.error,
            }
        ]


class WorkerProcess(models.Model):
    """A process that executes runs (``automations_worker``), registered at start and kept alive by a
    heartbeat every few seconds. When its heartbeat is older than ``AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS``
    other workers take over the runs it held, whatever lease those runs have left."""

    id = models.CharField(primary_key=True, max_length=64)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    queue = models.CharField(max_length=20, blank=True, default="", help_text="database or the distributed backend")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["last_seen_at"], name="worker_last_seen")]

    def __str__(self) -> str:
        return f"{self.id} ({self.hostname}:{self.pid})"


class RuleSchedule(models.Model):
    """Bookkeeping of a time-based rule (``scheduled``, ``date_reached``), worked by any worker (the row is
    locked while a page of its records is worked on; other workers skip it).

    ``scheduled``: ``next_fire_at`` is the next cron occurrence; while an occurrence is being fired (its runs
    made a page of records at a time) ``firing_at`` holds it and ``cursor`` the last record done, so another
    worker resumes where a dead one stopped. ``date_reached``: while the due times of the entity's existing
    records are being (re)computed, ``rebuilding`` is set and ``cursor`` walks the records."""

    rule = models.OneToOneField(AutomationRule, primary_key=True, on_delete=models.CASCADE, related_name="schedule")
    next_fire_at = models.DateTimeField(null=True, blank=True)
    firing_at = models.DateTimeField(null=True, blank=True)
    rebuilding = models.BooleanField(default=False)
    cursor = models.UUIDField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_fire_at"], name="schedule_next_fire"),
            models.Index(
                fields=["rule"], condition=Q(rebuilding=True) | Q(firing_at__isnull=False), name="schedule_busy"
            ),
        ]

    def __str__(self) -> str:
        return f"schedule of {self.rule_id}"


class DueTime(models.Model):
    """When a ``date_reached`` rule fires for a record (its date field plus the offset). One per (rule,
    record): moved when the value changes, deleted when it fires (a run is logged for it), when the record is
    deleted or the rule turned off."""

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(AutomationRule, on_delete=models.CASCADE, related_name="due_times")
    record_id = models.UUIDField()
    due_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="due_time_due")]
        constraints = [models.UniqueConstraint(fields=["rule", "record_id"], name="uniq_due_time_per_record")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.record_id} at {self.due_at:%Y-%m-%d %H:%M}"
