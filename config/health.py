"""Health checks for load balancers and orchestrators (README "Operations").

- ``GET /health/live``: the process answers. Touches nothing else, so a database outage does not get every
  web process restarted.
- ``GET /health/ready``: 200 when the database answers and every migration is applied, else 503. The body
  also says how much work waits and how many workers are alive; those inform, they never fail the check
  (events wait durably in the database while no worker runs, and the API keeps accepting writes).

No authentication, and nothing in the answers but counts and states.
"""

from __future__ import annotations

import contextlib

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from automations import engine_state

_migrations_applied = False  # once true, stays true for this process (code and schema only move forward)


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def migrations_pending(connection) -> bool:
    """Are migrations of this code not applied to the database yet (an upgrade half done)?"""
    global _migrations_applied
    if _migrations_applied:
        return False
    executor = MigrationExecutor(connection)
    pending = bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    _migrations_applied = not pending
    return pending


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    connection = connections[DEFAULT_DB_ALIAS]
    now = timezone.now()
    queue = {"ready": None, "oldest_ready_age_seconds": None}
    workers = {"alive": None}
    try:
        connection.ensure_connection()
        if migrations_pending(connection):
            database = "migrations pending"  # the engine's tables may not match this code yet: no counts
        else:
            database = "ok"
            state = engine_state.queue_state(now)
            queue = {"ready": state.ready, "oldest_ready_age_seconds": round(state.oldest_age_seconds(now), 3)}
            workers = {"alive": engine_state.workers_alive(now)}
    except DatabaseError:
        database = "unavailable"
        with contextlib.suppress(Exception):  # start from a fresh connection next time
            connection.close()
    healthy = database == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {"database": database, "queue": queue, "workers": workers},
    }
    return JsonResponse(body, status=200 if healthy else 503)
