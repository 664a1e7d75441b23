"""Middleware of the operations side: probes and metrics answered first, a request id on every request and
response, and the ids a request is about bound into its log lines."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from config import health, metrics

# An incoming X-Request-ID is kept when it is a plausible id (a proxy's or a client's); anything else
# (spaces, quotes, line breaks, a novel) is replaced, so a header cannot forge or break log lines.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")


class OperationsEndpointsMiddleware:
    """``/health/live``, ``/health/ready`` and ``/metrics``, before anything else runs: load balancers and
    Prometheus call them by IP address (no ``ALLOWED_HOSTS`` check), over plain HTTP (no HTTPS redirect),
    every few seconds (no request log line, no session)."""

    routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
        "/health/live": health.live,
        "/health/ready": health.ready,
        "/metrics": metrics.metrics,
    }

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info.rstrip("/"))
        if view is not None:
            return view(request)
        return self.get_response(request)


class RequestIdMiddleware:
    """Every request gets an id (``X-Request-ID`` from the client or the proxy when sane, else a new one):
    in its log lines (django-structlog reads the header) and in the response's ``X-Request-ID``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.META["HTTP_X_REQUEST_ID"] = request_id
        request.request_id = request_id
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class LogContextMiddleware:
    """Binds the workspace, entity, rule and run a request is about (from its URL) to its log lines."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        url_name = request.resolver_match.url_name if request.resolver_match else ""
        ids = {}
        if "workspace_pk" in view_kwargs:
            ids["workspace_id"] = view_kwargs["workspace_pk"]
        elif url_name and url_name.startswith("workspace-") and "pk" in view_kwargs:
            ids["workspace_id"] = view_kwargs["pk"]
        if "entity_pk" in view_kwargs:
            ids["entity_id"] = view_kwargs["entity_pk"]
        if url_name and url_name.startswith("automation-") and "pk" in view_kwargs:
            ids["rule_id"] = view_kwargs["pk"]
        if "log_id" in view_kwargs:
            ids["run_id"] = view_kwargs["log_id"]
        if ids:
            structlog.contextvars.bind_contextvars(**{key: str(value) for key, value in ids.items()})
