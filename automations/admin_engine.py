"""The admin's "Engine" page: is the engine keeping up? Queue depth and the oldest waiting work, runs per
minute over the last hour, the workers and their heartbeats, rules turned off in the last day.

Wired in ``config/urls.py`` as ``admin/engine/`` through ``admin.site.admin_view`` (staff only), linked
from the admin index (``templates/admin/index.html``). Reads through ``engine_state``, like the health
check and the metrics."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from . import engine_state

REFRESH_SECONDS = 30


def age_text(seconds: float) -> str:
    """A wait as a person says it: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def _chart(minutes: list[dict]) -> dict:
    """Per-minute stacked bars as percentages of the busiest minute, and the hour's totals."""
    totals = {status: sum(m[status] for m in minutes) for status in ("success", "error", "skipped")}
    peak = max((m["success"] + m["error"] + m["skipped"] for m in minutes), default=0)
    bars = []
    for m in minutes:
        total = m["success"] + m["error"] + m["skipped"]
        bars.append(
            {
                "minute": m["minute"],
                "total": total,
                "success": m["success"],
                "error": m["error"],
                "skipped": m["skipped"],
                # Heights in % of the chart; a minute with any run shows at least a sliver.
                "heights": {
                    status: (max(1.0, 100 * m[status] / peak) if m[status] else 0) if peak else 0
                    for status in ("success", "error", "skipped")
                },
            }
        )
    return {"bars": bars, "totals": totals, "peak": peak, "total": sum(totals.values())}


def engine_page(request: HttpRequest) -> HttpResponse:
    """Staff with view rights on rules and runs (superusers have them)."""
    if not (
        request.user.has_perm("automations.view_automationlog")
        and request.user.has_perm("automations.view_automationrule")
    ):
        raise PermissionDenied
    now = timezone.now()
    queue = engine_state.queue_state(now)
    workers = [
        {"worker": w, "alive": engine_state.is_alive(w, now), "age": age_text((now - w.last_seen_at).total_seconds())}
        for w in engine_state.registered_workers(now)[:50]
    ]
    disabled = [
        {"rule": rule, "url": reverse("admin:automations_automationrule_change", args=[rule.pk])}
        for rule in engine_state.auto_disabled_rules(now)[:100]
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Engine",
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "queue": queue,
        "oldest_age": age_text(queue.oldest_age_seconds(now)) if queue.oldest_ready_at else "",
        "oldest_seconds": queue.oldest_age_seconds(now),
        "open_runs": engine_state.open_runs_by_status(),
        "alive": sum(1 for w in workers if w["alive"]),
        "workers": workers,
        "chart": _chart(engine_state.runs_per_minute(now)),
        "chart_start": now - dt.timedelta(minutes=59),
        "disabled": disabled,
        "logs_url": reverse("admin:automations_automationlog_changelist"),
        "rules_url": reverse("admin:automations_automationrule_changelist"),
    }
    return render(request, "admin/automations/engine.html", context)
