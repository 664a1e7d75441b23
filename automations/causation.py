"""Which run (if any) is causing the current record write: the loop guard's memory.

The executor sets ``current_run`` while an action executes; the dispatcher reads it when the action
writes a record, so the new event carries the chain of rules that led to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunCause:
    rule_id: str
    record_id: str | None
    chain: list[dict] = field(default_factory=list)  # [{"rule_id", "record_id"}, ...] before this run
    chain_depth: int = 0


current_run: ContextVar[RunCause | None] = ContextVar("automations_current_run", default=None)


@contextlib.contextmanager
def running(cause: RunCause) -> Iterator[None]:
    token = current_run.set(cause)
    try:
        yield
    finally:
        current_run.reset(token)


def chain_for_new_event() -> tuple[list[dict], int]:
    """The (chain, depth) a record write made right now should carry."""
    cause = current_run.get()
    if cause is None:
        return [], 0
    return [*cause.chain, {"rule_id": cause.rule_id, "record_id": cause.record_id}], cause.chain_depth + 1
