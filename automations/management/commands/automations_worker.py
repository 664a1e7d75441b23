"""``python manage.py automations_worker``: the background side (task worker + stranded-run recovery)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django.utils.crypto import get_random_string

from automations import executor, retention


class Command(BaseCommand):
    help = (
        "Run the automation worker: executes queued tasks of the default backend (django-tasks-db) and "
        "resumes runs stranded by a dead worker. Run several for more throughput; SIGTERM finishes the "
        "run in hand, then exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queues", default="*", help="Comma-separated queue names, or * (default) for all.")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.AUTOMATIONS_WORKER_POLL_INTERVAL,
            help="Seconds between polls when idle (PostgreSQL wakes the worker at once through LISTEN/NOTIFY).",
        )
        parser.add_argument(
            "--recovery-interval",
            type=float,
            default=settings.AUTOMATIONS_RECOVERY_INTERVAL,
            help="Seconds between sweeps for stranded runs (0 disables).",
        )
        parser.add_argument("--batch", action="store_true", help="Process everything due, then exit.")
        parser.add_argument("--max-tasks", type=int, default=None, help="Exit after this many tasks.")
        parser.add_argument("--worker-id", default=None, help="Unique id of this worker (default: random).")
        parser.add_argument(
            "--recover-only", action="store_true", help="Run one recovery sweep and one retention pass, then exit."
        )

    def handle(self, *args, **options):
        if options["interval"] < 0 or options["recovery_interval"] < 0:
            raise CommandError("--interval and --recovery-interval must be zero or more.")
        if options["recover_only"]:
            summary = executor.recover()
            self.stdout.write(f"recovered: {summary}")
            self.stdout.write(f"pruned: {retention.prune()}")
            return
        backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
        from django_tasks_db.backend import DatabaseBackend

        if not isinstance(backend, DatabaseBackend):
            raise CommandError(
                f"The default task backend is {type(backend).__name__}: run that backend's own worker, and "
                "`automations_worker --recover-only` periodically (e.g. from cron) for stranded runs."
            )
        from automations.worker import AutomationsWorker

        queues = [q.strip() for q in options["queues"].split(",") if q.strip()] or ["*"]
        worker = AutomationsWorker(
            queue_names=queues,
            interval=options["interval"],
            batch=options["batch"],
            backend_name=DEFAULT_TASK_BACKEND_ALIAS,
            startup_delay=False,
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"] or get_random_string(32),
            excluded_queue_names=[],
            recovery_interval=options["recovery_interval"] or None,
        )
        worker.configure_signals()
        worker.run()
