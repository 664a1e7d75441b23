"""What an action sees when it runs (or previews): the rule, the event's record snapshot, the run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workspaces.models import Entity

    from .models import AutomationLog, AutomationRule


@dataclass
class RunContext:
    rule: AutomationRule
    entity: Entity
    record: dict[str, Any]  # the seed's record object: {id, workspace_id, entity_id, data, created_at, updated_at}
    event_type: str  # created | updated | deleted
    old_data: dict[str, Any] | None = None
    log: AutomationLog | None = None  # None for a dry run
    attempt: int = 1
    is_test: bool = False
    dry_run: bool = False
    chain: list[str] = field(default_factory=list)
    chain_depth: int = 0
    batch_id: str | None = None
    # The step being run: its config, its index, and the results of the earlier steps (``{{ steps[0]... }}``).
    config: dict[str, Any] | None = None
    step_index: int = 0
    steps: list[dict[str, Any] | None] = field(default_factory=list)
    # Time-based triggers: the occurrence or due time the run is for (ISO 8601), as ``{{ occurrence }}``.
    occurrence: str | None = None

    def __post_init__(self) -> None:
        if self.config is None:
            self.config = self.rule.action_config or {}

    @property
    def workspace_id(self) -> str:
        return str(self.rule.workspace_id)

    @property
    def entity_id(self) -> str:
        return str(self.rule.entity_id)

    @property
    def record_id(self) -> str | None:
        return self.record.get("id")

    @property
    def step_run_id(self):
        """An id for this step of this run (the run's own id for the first step): what an action that must
        not do its work twice (create_task) remembers it did, across retries and crashes."""
        if self.log is None:
            return None
        return self.log.id if self.step_index == 0 else uuid.uuid5(self.log.id, f"step-{self.step_index}")

    @property
    def delivery_id(self) -> str:
        """Stable across the retries of one step of one run: webhook-id and idempotency key (the first
        step keeps the run's own id)."""
        base = self.log.delivery_id if self.log is not None else "msg_dryrun"
        return base if self.step_index == 0 else f"{base}_{self.step_index}"

    def template_variables(self) -> dict[str, Any]:
        """Variables for user templates: every field of the record at top level (``{{name}}``), plus
        ``id``, ``created_at``, ``updated_at``, ``record`` (the whole object), ``old`` (previous data),
        ``entity`` and ``automation`` (name/id)."""
        data = self.record.get("data") or {}
        variables: dict[str, Any] = dict(data)
        variables.update(
            {
                "id": self.record.get("id"),
                "created_at": self.record.get("created_at"),
                "updated_at": self.record.get("updated_at"),
                "record": self.record,
                "data": data,
                "old": self.old_data or {},
                "entity": {"id": str(self.entity.id), "name": self.entity.name},
                "automation": {"id": str(self.rule.id), "name": self.rule.name},
                "workspace_id": self.workspace_id,
                "entity_id": self.entity_id,
                "event": self.event_type,
                "steps": self.steps,
                "occurrence": self.occurrence,
            }
        )
        return variables
