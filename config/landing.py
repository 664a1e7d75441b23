"""The page at ``/``: what this server is and where to go from here (the URL ``make run`` prints)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from automations.demo import demo_login_hint


@require_safe
def landing_page(request: HttpRequest) -> HttpResponse:
    """Links to the admin, the API, its docs and schema; the demo inbox when it is on; with DEBUG, who to
    log in as (the demo owner) and where its password is."""
    return render(
        request,
        "landing.html",
        {
            "demo_inbox": settings.DEMO_WEBHOOK_INBOX,
            "show_demo_login": settings.DEBUG,
            "demo_login": demo_login_hint() if settings.DEBUG else None,
        },
    )
