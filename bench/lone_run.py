"""CPU of one run arriving alone, in-process: where the trickle phase's worker CPU goes, without its noise.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/automations_bench .venv/bin/python bench/lone_run.py

Starts the bench's webhook receiver, makes a fresh entity with one ``call_webhook`` rule to it, then repeats:
write one record (``records.services``, not measured), then ``tasks.handle_events`` (measured: the CPU
time of this thread, which takes the event, matches it, logs the run, delivers the webhook and writes its
success). Prints the mean per run for each of ``--rounds`` rounds of ``--runs`` runs and their median.
Compare two commits by running it from each checkout in turn (``git worktree``); the machine drifts, so
alternate them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 (the bench's helpers: database, receiver, fixture)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or bench.DEFAULT_DATABASE_URL
    name = url.rsplit("/", 1)[1]
    bench.ensure_database(url)
    bench.setup_django(url, bench.database_url_with_name(url, f"{name}_scale"))
    bench.truncate_engine_tables()
    procs = bench.Processes(url)

    from automations import tasks, worker
    from automations.heartbeats import current as registration
    from records import services
    from workspaces.models import Entity

    try:
        _, port = procs.receiver()
        ctx = {"fixture": bench.Fixture(), "receiver": bench.Receiver(port), "procs": procs}
        path = bench.webhook_entity(ctx, f"lone-{uuid.uuid4().hex[:6]}")
        entity = Entity.objects.get(pk=path.rstrip("/").split("/")[-2])
        worker.use_worker_session_options()
        registration.register(queue="database", worker_id=f"lone-run-{os.getpid()}")

        def one() -> float:
            services.record_create(entity=entity, data={"name": "Ada"})
            started = time.thread_time()
            outcome = tasks.handle_events(limit=50)
            spent = time.thread_time() - started
            if len(outcome.executed) != 1 or outcome.executed[0].status != "success":
                raise RuntimeError(f"the run did not succeed: {outcome}")
            return spent

        for _ in range(30):  # warm-up: connections, prepared statements, the rule cache
            one()
        rounds = [statistics.mean(one() for _ in range(args.runs)) * 1000 for _ in range(args.rounds)]
        print(f"handle_events CPU per run arriving alone, ms: rounds {[round(r, 3) for r in rounds]}")
        print(f"median {statistics.median(rounds):.3f} ms")
    finally:
        if registration.worker_id:
            registration.unregister()
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
