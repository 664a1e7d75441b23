"""``python manage.py automations_worker``: the background side of the engine (see automations/worker.py)."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from automations import retention, tasks
from automations.worker import EngineWorker


class Command(BaseCommand):
    help = (
        "Run the automation worker: matches record events to rules, executes the runs, retries them on "
        "schedule, takes over runs of dead workers and prunes old rows. With TASKS_BACKEND=rq it also runs "
        "the RQ worker for the engine's tasks. Run several for more throughput; SIGTERM finishes the run in "
        "hand, hands the rest back, then exits."
    )

    def add_arguments(self, parser):
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
            help="Seconds between sweeps for work a lost message left behind (0 disables upkeep).",
        )
        parser.add_argument("--batch", action="store_true", help="Process everything due, then exit.")
        parser.add_argument("--worker-id", default=None, help="Unique id of this worker (default: host-pid-random).")
        parser.add_argument(
            "--recover-only", action="store_true", help="Run one recovery sweep and one retention pass, then exit."
        )

    def handle(self, *args, **options):
        if options["interval"] < 0 or options["recovery_interval"] < 0:
            raise CommandError("--interval and --recovery-interval must be zero or more.")
        if options["verbosity"] == 0:  # -v 0: warnings only (no line per run)
            logging.getLogger("automations").setLevel(logging.WARNING)
        if options["recover_only"]:
            taken = tasks.take_over()
            lost = tasks.recover_lost() if not settings.AUTOMATIONS_EMBEDDED_QUEUE else {}
            self.stdout.write(f"recovered: { {'taken_over': len(taken.executed), **lost} }")
            self.stdout.write(f"pruned: {retention.prune()}")
            return
        worker = EngineWorker(
            interval=options["interval"],
            recovery_interval=options["recovery_interval"] or None,
            batch=options["batch"],
            worker_id=options["worker_id"],
        )
        worker.configure_signals()
        worker.run()
