"""``call_webhook``: a signed HTTP request to the rule's URL (Standard Webhooks)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html
from rest_framework import serializers

from .. import webhooks
from ..context import RunContext
from ..exceptions import ActionError, PermanentActionError
from ..templating import render
from .base import ActionType, json_html
from .fields import TemplateField

METHODS = ("POST", "PUT", "PATCH")


def _json_or_none(body: str):
    """The receiver's answer parsed, when it is JSON (later steps use ``{{ steps[i].response_json.id }}``)."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class CallWebhookConfigSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2048, trim_whitespace=True)
    method = serializers.CharField(required=False, default="POST")
    headers = serializers.JSONField(required=False, default=dict)
    secret_headers = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )
    body_template = TemplateField(mode="json", required=False, allow_blank=True, max_length=100_000)

    def validate_url(self, value: str) -> str:
        try:
            return webhooks.validate_webhook_url(value)
        except webhooks.WebhookURLError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_method(self, value: str) -> str:
        method = str(value).strip().upper()
        if method not in METHODS:
            raise serializers.ValidationError(f"Must be one of {', '.join(METHODS)}.")
        return method

    def validate_headers(self, value: Any) -> dict[str, str]:
        try:
            return webhooks.validate_headers(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_secret_headers(self, value: list[str]) -> list[str]:
        for name in value:
            if not webhooks.HEADER_NAME_RE.match(name):
                raise serializers.ValidationError(f"'{name}' is not a valid header name.")
        return value


class CallWebhook(ActionType):
    """Call a webhook (the seed's ``call_webhook``).

    Config: ``url`` (http/https, must not point at private/loopback/link-local/metadata addresses
    unless settings allow it), ``method`` POST|PUT|PATCH (default POST), ``headers``, ``secret_headers``
    (header names stored redacted, on top of Authorization/Cookie/X-Api-Key), ``body_template`` (a
    JSON template; values are JSON-escaped, ``{{ payload|tojson }}`` inserts the default payload).

    Default body: the seed's ``{workspace_id, entity_id, record, timestamp, event:
    "automation_triggered"}`` plus ``automation_id``, ``trigger_type``, ``event_type``, ``old_data``,
    ``delivery_id``, ``is_test``. Every request carries ``webhook-id`` (the run's delivery id, the same on
    every retry), ``webhook-timestamp`` and ``webhook-signature``.

    Result: ``{"status_code", "response" (at most 4 KB), "response_json" (that body parsed when it is JSON,
    else null), "response_truncated", "url", "method",
    "delivery_id", "duration_ms", "request_headers" (redacted)}``; the same shape rides on errors.
    """

    name = "call_webhook"
    label = "Call webhook"
    signs_requests = True
    config_serializer = CallWebhookConfigSerializer

    def redact_config(self, config: dict) -> dict:
        """Authorization, Cookie, X-Api-Key and the rule's ``secret_headers`` show as ``[redacted]``."""
        headers = config.get("headers")
        if not isinstance(headers, dict):
            return config
        return {**config, "headers": webhooks.redact_headers(headers, config.get("secret_headers") or ())}

    def keep_secrets(self, config: Any, stored: dict) -> Any:
        """A header sent back as ``[redacted]`` keeps its stored value (header names ignore case)."""
        if not isinstance(config, dict) or not isinstance(config.get("headers"), dict):
            return config
        stored_values = {str(name).lower(): value for name, value in (stored.get("headers") or {}).items()}
        headers = {
            name: stored_values.get(str(name).lower(), value) if value == webhooks.REDACTED else value
            for name, value in config["headers"].items()
        }
        return {**config, "headers": headers}

    def payload(self, ctx: RunContext) -> dict[str, Any]:
        """The seed's webhook payload plus the run's identifiers."""
        created = getattr(ctx.log, "created_at", None) or timezone.now()
        return {
            "workspace_id": ctx.workspace_id,
            "entity_id": ctx.entity_id,
            "record": ctx.record,
            "timestamp": created.isoformat(),
            "event": "automation_triggered",
            "automation_id": str(ctx.rule.id),
            "trigger_type": ctx.rule.trigger_type,
            "event_type": ctx.event_type,
            "old_data": ctx.old_data,
            "delivery_id": ctx.delivery_id,
            "is_test": ctx.is_test,
        }

    def build(self, ctx: RunContext) -> dict[str, Any]:
        """Method, URL, body bytes and every header of the request (signatures for this attempt)."""
        config = ctx.config or {}
        payload = self.payload(ctx)
        template = config.get("body_template")
        if template:
            variables = {**ctx.template_variables(), "payload": payload, "delivery_id": ctx.delivery_id}
            rendered = render(template, variables, mode="json")
            try:
                json.loads(rendered)
            except ValueError as exc:
                raise PermanentActionError(f"The body template did not produce valid JSON: {exc}") from None
            body = rendered.encode()
        else:
            body = json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            **{name: str(value) for name, value in (config.get("headers") or {}).items()},
            **webhooks.signature_headers(ctx.rule, ctx.delivery_id, body),
        }
        return {
            "method": str(config.get("method") or "POST").upper(),
            "url": config.get("url", ""),
            "headers": headers,
            "body": body,
            "secret_headers": list(config.get("secret_headers") or []),
        }

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        request = self.build(ctx)
        result: dict[str, Any] = {
            "status_code": None,
            "response": "",
            "response_truncated": False,
            "url": request["url"],
            "method": request["method"],
            "delivery_id": ctx.delivery_id,
            "duration_ms": None,
            "request_headers": webhooks.redact_headers(request["headers"], request["secret_headers"]),
        }
        try:
            response = webhooks.deliver(
                url=request["url"], method=request["method"], body=request["body"], headers=request["headers"]
            )
        except ActionError as exc:
            exc.result = result
            raise
        result.update(
            status_code=response.status_code,
            response=response.body,
            response_json=_json_or_none(response.body),
            response_truncated=response.truncated,
            duration_ms=response.duration_ms,
        )
        webhooks.raise_for_status(response, result=result)
        return result

    def describe_result(self, result):
        """The request line, status, duration and redacted request headers; the response (JSON indented)."""
        if not isinstance(result, dict) or not result:
            return super().describe_result(result)
        response = result.get("response") or ""
        with contextlib.suppress(TypeError, ValueError):
            response = json.dumps(json.loads(response), indent=2, ensure_ascii=False)
        return format_html(
            "<p><strong>{} {}</strong> → HTTP {} in {} ms (delivery {})</p>"
            "<p>Request headers:</p>{}<p>Response{}:</p><pre style='white-space: pre-wrap'>{}</pre>",
            result.get("method", ""),
            result.get("url", ""),
            result.get("status_code") or "no answer",
            result.get("duration_ms") if result.get("duration_ms") is not None else "—",
            result.get("delivery_id", ""),
            json_html(result.get("request_headers")),
            " (truncated)" if result.get("response_truncated") else "",
            response or "—",
        )

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        request = self.build(ctx)
        try:
            webhooks.parse_webhook_url(request["url"])
            url_error = None
        except webhooks.WebhookURLError as exc:
            url_error = str(exc)
        return {
            "method": request["method"],
            "url": request["url"],
            "url_error": url_error,
            "headers": webhooks.redact_headers(request["headers"], request["secret_headers"]),
            "body": request["body"].decode(),
            "signature_headers": {k: v for k, v in request["headers"].items() if k.startswith("webhook-")},
        }
