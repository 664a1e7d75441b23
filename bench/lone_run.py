"""CPU of one run arriving alone, in-process: where the trickle phase's worker CPU goes, without its noise.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/automations_bench .venv/bin/python bench/lone_run.py

Starts the bench's webhook receiver, makes a fresh entity with one ``call_webhook`` rule to it, then repeats:
write one record (``records.services``, not measured), then ``tasks.handle_events`` (measured: the CPU
time of this thread, which takes the event, matches it, logs the run, delivers the webhook and writes its
success). Prints the mean per run for each of ``--rounds`` rounds of ``--runs`` runs and their median.
Compare two commits by running it from each checkout in turn (``git worktree``); the machine drifts, so
alternate them.

``--pause-ms 25`` waits that long between the write and the measured call, as a worker does between records
arriving at 40/s (the bench's trickle phase): on this 2-core VM the very same call then costs 1.5 to 2 times
the CPU (2026-12-02: 1.2-2.7 ms back to back, 2.6-3.6 ms after a 25 ms pause; a 25 ms busy-wait instead of
the sleep costs as much, so it is not the sleep itself but a cold start: caches and predictors the pause
gave away). ``both`` measures 0 and 25 ms interleaved.
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
    parser.add_argument(
        "--pause-ms", default="0", help="pause before each measured call: milliseconds, or 'both' (0 and 25)"
    )
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

        def one(pause: float = 0.0) -> float:
            services.record_create(entity=entity, data={"name": "Ada"})
            if pause:
                time.sleep(pause)
            started = time.thread_time()
            outcome = tasks.handle_events(limit=50)
            spent = time.thread_time() - started
            if len(outcome.executed) != 1 or outcome.executed[0].status != "success":
                raise RuntimeError(f"the run did not succeed: {outcome}")
            return spent

        for _ in range(30):  # warm-up: connections, prepared statements, the rule cache
            one()
        pauses = [0.0, 25.0] if args.pause_ms == "both" else [float(args.pause_ms)]
        rounds: dict[float, list[float]] = {pause: [] for pause in pauses}
        for _ in range(args.rounds):
            for pause in pauses:  # interleaved: the machine's drift hits each alike
                rounds[pause].append(statistics.mean(one(pause / 1000) for _ in range(args.runs)) * 1000)
        for pause, values in rounds.items():
            print(
                f"handle_events CPU per run arriving alone, {pause:g} ms pause before it, ms: "
                f"rounds {[round(r, 3) for r in values]}, median {statistics.median(values):.3f} ms"
            )
    finally:
        if registration.worker_id:
            registration.unregister()
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
