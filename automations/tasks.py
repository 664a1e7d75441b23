"""Engine orchestration, and the only place that enqueues.

Each job has one entry point here, whatever runs it:

- ``handle_events``: match waiting events (``matching``), execute the runs they started (``batches``),
  schedule what has to wait;
- ``handle_due_runs``: claim waiting runs whose time has come (retries, throttled runs) and execute them;
- ``take_over``: runs held by a dead worker or past their lease (``recovery``), executed again with the
  same id.

With the embedded queue (``TASKS_BACKEND=database``, the default) the engine's tables are the queue:
``automations_worker`` calls these functions in its loop, an event row is the message and a run's due time
its schedule, so nothing is enqueued anywhere. With a distributed backend (``TASKS_BACKEND=rq``) the same
functions run as Django tasks (``process_events``, ``run_automation``) on that backend's workers, enqueued
here: events at commit, waiting runs for their due time. The database ledger keeps every promise either
way; ``automations_worker`` also sweeps for what a lost message left behind (``recover_lost``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.utils import InterfaceError, OperationalError
from django.tasks import task
from django.utils import timezone

from . import batches, ledger, matching, recovery, schedules, sql
from .batches import BatchOutcome
from .heartbeats import current as registration
from .ledger import Run
from .models import AutomationLog, RunStatus

logger = logging.getLogger("automations")

KeepGoing = Callable[[], bool] | None


def embedded_queue() -> bool:
    return settings.AUTOMATIONS_EMBEDDED_QUEUE


def batch_size() -> int:
    return settings.AUTOMATIONS_WORKER_BATCH_SIZE


# --------------------------------------------------------------------------- jobs


def _execute(runs: list[Run], keep_going: KeepGoing, waiting: Iterable[AutomationLog] = ()) -> BatchOutcome:
    """Execute claimed runs (those of a rule turned off meanwhile are logged skipped) and schedule what
    has to wait. ``outcome.executed`` lists every run handled, skipped ones included."""
    skipped = [log for log, rule in runs if ledger.skip_if_inactive(log, rule)]
    outcome = batches.execute_runs([run for run in runs if run[0] not in skipped], keep_going=keep_going)
    outcome.executed[:0] = skipped
    schedule([*waiting, *outcome.executed, *outcome.released])
    return outcome


def handle_events(
    *, ids: Iterable | None = None, limit: int | None = None, keep_going: KeepGoing = None
) -> BatchOutcome:
    """Match up to ``limit`` waiting events (only ``ids`` when given) and execute the runs they start."""
    matched = matching.take_and_match(ids=None if ids is None else list(ids), limit=limit or batch_size())
    return _execute(matched.runs, keep_going, waiting=matched.logs)


def handle_due_runs(
    *, ids: Iterable | None = None, limit: int | None = None, keep_going: KeepGoing = None
) -> BatchOutcome:
    """Claim up to ``limit`` waiting runs that are due (only ``ids`` when given) and execute them."""
    runs = ledger.claim(ids=None if ids is None else list(ids), limit=limit or batch_size())
    return _execute(runs, keep_going)


def take_over(*, limit: int = 500, keep_going: KeepGoing = None) -> BatchOutcome:
    """Execute again the runs of dead workers and runs past their lease, a batch at a time (a worker
    never holds more than a batch, so its own runs stay quick to take over if it dies too)."""
    outcome = BatchOutcome()
    while len(outcome.executed) < limit and (keep_going is None or keep_going()):
        runs = recovery.held_by_the_gone(limit=min(batch_size(), limit - len(outcome.executed)))
        if not runs:
            break
        logger.info("taking over %d run(s) from dead or stuck workers", len(runs))
        done = _execute(runs, keep_going)
        outcome.executed += done.executed
        outcome.released += done.released
    return outcome


def fire_time_triggers(*, keep_going: KeepGoing = None) -> int:
    """Log the runs of time-based rules whose moment has come (they are then due runs like any other)."""
    logs = schedules.fire_due_times()
    logs += schedules.work_schedules(keep_going=keep_going)
    schedule(logs)
    return len(logs)


def time_work_due() -> bool:
    """Is any time-based work due (a waiting run whose time has come, a due time, a schedule)? One statement:
    the embedded worker's poll asks it before claiming anything, so a poll that finds nothing costs one
    round trip instead of three claims."""
    return sql.anything_due(now=timezone.now())


def recover_lost(*, limit: int = 500, keep_going: KeepGoing = None) -> dict[str, int]:
    """Distributed queue: events and due runs whose message never arrived (older than the recovery grace),
    a batch at a time."""
    found = {"events": 0, "runs": 0}
    while found["events"] < limit and (keep_going is None or keep_going()):
        matched = recovery.stranded_events(limit=batch_size())
        if not matched.events:
            break
        found["events"] += matched.events
        _execute(matched.runs, keep_going, waiting=matched.logs)
    while found["runs"] < limit and (keep_going is None or keep_going()):
        overdue = recovery.overdue_runs(limit=batch_size())
        if not overdue:
            break
        found["runs"] += len(overdue)
        _execute(overdue, keep_going)
    if found["events"] or found["runs"]:
        logger.info("recovered %d lost event(s) and %d overdue run(s)", found["events"], found["runs"])
    return found


# --------------------------------------------------------------------------- enqueueing (distributed backends)


_pending = threading.local()


class _Outbox:
    """The event ids of one transaction, sent once it commits (one ``on_commit`` hook per transaction)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def send(self) -> None:
        if getattr(_pending, "outbox", None) is self:
            _pending.outbox = None
        _send_events(self.ids)


def enqueue_events(event_ids: list[str]) -> None:
    """A record write captured these events (called inside the writer's transaction). The embedded queue
    needs nothing more; a distributed backend gets them once the transaction commits, in messages of up to
    ``AUTOMATIONS_EVENTS_PER_TASK`` events: the writes of one transaction share messages (a broker's cost
    per message is several times a run's), rather than a message per record."""
    if embedded_queue():
        return
    conn = transaction.get_connection()
    if not conn.in_atomic_block:  # autocommit: the write has committed already
        _send_events(event_ids)
        return
    outbox = getattr(_pending, "outbox", None)
    # The transaction's hook is gone when it rolled back (or the savepoint that registered it did): its ids
    # are dropped with it, and this write starts a new outbox. Ids of a savepoint rolled back after the hook
    # was registered go along; ``process_events`` skips events that do not exist.
    if outbox is None or not any(hook[1] == outbox.send for hook in conn.run_on_commit):
        outbox = _pending.outbox = _Outbox()
        transaction.on_commit(outbox.send)
    outbox.ids.extend(event_ids)


def _send_events(event_ids: list[str]) -> None:
    size = max(1, settings.AUTOMATIONS_EVENTS_PER_TASK)
    for start in range(0, len(event_ids), size):
        _send(process_events, event_ids=event_ids[start : start + size])


def schedule(logs: Iterable[AutomationLog]) -> None:
    """Runs now waiting (a retry, a throttled run, a run handed back) get a message for their due time on a
    distributed backend. The embedded queue finds them by their due time."""
    if embedded_queue():
        return
    now = timezone.now()
    for log in logs:
        if log.status in (RunStatus.PENDING, RunStatus.RETRYING) and log.next_attempt_at is not None:
            due_later = log.next_attempt_at > now
            _send(
                run_automation.using(run_after=log.next_attempt_at) if due_later else run_automation, log_id=str(log.pk)
            )


def _send(task_or_variant, **kwargs) -> None:
    """Enqueue, never failing the caller: a lost message is found again by ``recover_lost``."""
    try:
        task_or_variant.enqueue(**kwargs)
    except Exception as exc:
        logger.warning("could not enqueue %s (%s); recovery will pick the work up", kwargs, exc)


# --------------------------------------------------------------------------- Django tasks (distributed backends)


def _with_database(job: Callable):
    """Run ``job``; after a lost database connection (restart, failover) reconnect and run it again,
    for up to about 20 s, so work committed before a restart moves on within seconds of it coming back."""
    delay = 0.5
    deadline = time.monotonic() + 20
    while True:
        try:
            return job()
        except (OperationalError, InterfaceError) as exc:
            with contextlib.suppress(Exception):
                connection.close()
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5)


@task(queue_name=settings.AUTOMATIONS_QUEUE)
def process_events(event_ids: list[str]) -> int:
    """Match the events against active rules, log one run per matching rule, execute the runs (a batch
    at a time, so a worker holds few runs: a dead worker's runs are few to take over)."""
    executed = 0
    for start in range(0, len(event_ids), batch_size()):
        chunk = event_ids[start : start + batch_size()]
        job = lambda chunk=chunk: handle_events(ids=chunk, limit=len(chunk), keep_going=registration.still_mine)  # noqa: E731
        executed += len(_with_database(job).executed)
    return executed


@task(queue_name=settings.AUTOMATIONS_QUEUE)
def run_automation(log_id: str) -> str | None:
    """Run (or retry) one waiting run when it is due; None when it was not due or someone else has it."""
    outcome = _with_database(lambda: handle_due_runs(ids=[log_id], limit=1, keep_going=registration.still_mine))
    return outcome.executed[0].status if outcome.executed else None
