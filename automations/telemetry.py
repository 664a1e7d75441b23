"""What operators see of the engine: Prometheus series and one structured log record per reported run.

Two kinds of series (README "Operations" lists them):

- observed where a run executes, once per reported run (``record_run``, called by ``executor._report``)
  and per auto-disable (``record_auto_disable``, called by ``health.disable``): run outcomes, retries,
  durations, delivery latency, rules turned off. With ``PROMETHEUS_MULTIPROC_DIR`` set, every process
  (gunicorn's workers, ``automations_worker``\\s) writes them to files in that directory and ``/metrics``
  adds them up; unset, each process keeps its own (fine for one process, wrong for several).
- read from the database when Prometheus scrapes (``DatabaseCollector``): queue depth and oldest age,
  open runs by status, workers alive and their last heartbeat. The same in every process and node.

Telemetry never fails a run: an error here is logged once and swallowed.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import structlog
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from . import engine_state
from .models import AutomationLog, AutomationRule, RunStatus

logger = logging.getLogger("automations")
run_logger = structlog.get_logger("automations.runs")

if settings.PROMETHEUS_MULTIPROC_DIR:
    # prometheus-client opens its files there on first use. A directory that cannot be made (a command run
    # by another user, before the services created it) must not stop the process: its samples are lost.
    try:
        Path(settings.PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR %s is not usable (%s); metrics of this process are lost",
            settings.PROMETHEUS_MULTIPROC_DIR,
            exc,
        )

# Metric objects live in this registry (not prometheus-client's global one, which adds process metrics
# that are meaningless in multi-process mode); /metrics builds its own registry per scrape.
_registry = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "automations_runs",
    "Runs finished, by final status (success, error) and action type.",
    ["status", "action_type"],
    registry=_registry,
)
RETRIES = Counter(
    "automations_run_retries",
    "Failed attempts rescheduled for a retry, by action type.",
    ["action_type"],
    registry=_registry,
)
DURATION = Histogram(
    "automations_run_duration_seconds",
    "Time one attempt of a run spent executing its action, by action type.",
    ["action_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=_registry,
)
LATENCY = Histogram(
    "automations_delivery_latency_seconds",
    "From the record change (the event's creation) to the run's final outcome, retries included, by "
    "action type. Test runs are not counted.",
    ["action_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
    registry=_registry,
)
# Every series has labels: prometheus-client opens its file for a labelled series on first use, never at
# import, so a broken PROMETHEUS_MULTIPROC_DIR cannot stop a process from starting.
AUTO_DISABLED = Counter(
    "automations_rules_auto_disabled",
    "Rules the engine turned off (too many failures in a row, or a receiver answering 410 Gone), by action type.",
    ["action_type"],
    registry=_registry,
)

_failed_once = False


def _telemetry_failed(what: str) -> None:
    global _failed_once
    if not _failed_once:
        _failed_once = True
        logger.exception("telemetry: could not record %s (runs go on; reported once per process)", what)


def delivery_latency_seconds(log: AutomationLog) -> float | None:
    """From the event's creation to the run's finish. The event is at hand when the run was matched in this
    batch; a run claimed later (a retry, a throttled run) counts from when it was logged, which is when its
    event was matched (the same moment, give or take the queue wait). A success buffered for the batch's
    write has no ``finished_at`` yet: it finished now."""
    finished = log.finished_at or timezone.now()
    cached = log.event_id is not None and AutomationLog.event.is_cached(log)  # never a query here
    started = log.event.created_at if cached and log.event is not None else log.created_at
    if started is None:
        return None
    return max(0.0, (finished - started).total_seconds())


def record_run(log: AutomationLog, rule: AutomationRule, status: str, duration_ms: int, error: str = "") -> None:
    """A run was reported (finished, or rescheduled for a retry): count it, observe its timings, and with
    JSON logs write one ``automation_run`` record with its ids."""
    action_type = log.action_type or rule.action_type
    latency = None
    try:
        DURATION.labels(action_type).observe(duration_ms / 1000)
        if status == RunStatus.RETRYING:
            RETRIES.labels(action_type).inc()
        else:
            RUNS.labels(str(status), action_type).inc()
            latency = None if log.is_test else delivery_latency_seconds(log)
            if latency is not None:
                LATENCY.labels(action_type).observe(latency)
    except Exception:
        _telemetry_failed("a run")
    if settings.LOG_FORMAT == "json":
        fields = {
            "run_id": str(log.pk),
            "rule_id": str(rule.pk),
            "rule": rule.name,
            "workspace_id": str(log.workspace_id),
            "entity_id": str(log.entity_id),
            "record_id": str(log.record_id) if log.record_id else None,
            "action_type": action_type,
            "trigger_type": log.trigger_type,
            "status": str(status),
            "attempt": log.attempts or 0,
            "duration_ms": duration_ms,
            "is_test": log.is_test,
        }
        step = getattr(log, "current_step", None)  # multi-step runs: the step this report is about
        if step is not None:
            fields["step"] = step
        if latency is not None:
            fields["latency_ms"] = int(latency * 1000)
        if error:
            fields["error"] = error[:500]
        level = logging.INFO if status == RunStatus.SUCCESS else logging.WARNING
        run_logger.log(level, "automation_run", **fields)


def record_auto_disable(rule: AutomationRule) -> None:
    """The engine turned ``rule`` off."""
    try:
        AUTO_DISABLED.labels(rule.action_type).inc()
    except Exception:
        _telemetry_failed("an auto-disable")


class DatabaseCollector:
    """Series counted in the database at scrape time (a few indexed queries). While the database does not
    answer, only ``automations_database_up 0`` is reported."""

    def collect(self):
        up = GaugeMetricFamily("automations_database_up", "1 when the database answered this scrape.")
        try:
            families = list(self._from_database())
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_database(self):
        now = timezone.now()
        queue = engine_state.queue_state(now)
        ready = GaugeMetricFamily(
            "automations_queue_ready",
            "Work a worker could take now: events not matched yet, runs due.",
            labels=["kind"],
        )
        ready.add_metric(["event"], queue.waiting_events)
        ready.add_metric(["run"], queue.due_runs)
        yield ready
        yield GaugeMetricFamily(
            "automations_queue_oldest_ready_age_seconds",
            "How long the oldest ready event or due run has waited (0 when nothing waits).",
            value=queue.oldest_age_seconds(now),
        )
        open_runs = GaugeMetricFamily(
            "automations_runs_open", "Runs not finished: pending, running, retrying.", labels=["status"]
        )
        for status, count in engine_state.open_runs_by_status().items():
            open_runs.add_metric([status], count)
        yield open_runs
        yield GaugeMetricFamily(
            "automations_workers_alive",
            "Worker processes that sent a heartbeat in the last minute.",
            value=engine_state.workers_alive(now),
        )
        beats = GaugeMetricFamily(
            "automations_worker_last_heartbeat_timestamp_seconds",
            "Last heartbeat of each registered worker process (Unix time).",
            labels=["worker", "hostname"],
        )
        for worker in engine_state.registered_workers(now):
            beats.add_metric([worker.id, worker.hostname], worker.last_seen_at.timestamp())
        yield beats


class _MultiProcessFiles:
    """prometheus-client's multi-process collector over ``PROMETHEUS_MULTIPROC_DIR`` and its immediate
    subdirectories (processes of another PID namespace, e.g. another container on a shared volume, write
    to a subdirectory of their own so their files cannot collide)."""

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        files = glob.glob(os.path.join(self.path, "*.db")) + glob.glob(os.path.join(self.path, "*", "*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)


def scrape_registry() -> CollectorRegistry:
    """What one scrape of /metrics reports: this node's observed series and the database's counts."""
    registry = CollectorRegistry(auto_describe=False)
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry.register(_MultiProcessFiles(settings.PROMETHEUS_MULTIPROC_DIR))
    else:
        for metric in (RUNS, RETRIES, DURATION, LATENCY, AUTO_DISABLED):
            registry.register(metric)
    registry.register(DatabaseCollector())
    return registry
