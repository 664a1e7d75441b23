"""The demo's login, its automations for ``manage.py seed_demo``, and a local webhook inbox to watch them fire.

The demo owner ``demo`` logs in with ``DEMO_PASSWORD`` when set, else with a password generated once into
``.demo-password`` at the repository root (git-ignored).

``seed_demo_automations`` creates one active rule per action type on the demo "Leads" entity (idempotent,
by rule name; a re-run on another port moves the webhook rule to that port's inbox). The ``call_webhook``
rule posts to ``/demo/webhook-inbox/`` on the same server, which keeps the last deliveries in memory and
shows them with their signature checked (only served when ``DEMO_WEBHOOK_INBOX=true``, as ``make run``
sets it)."""

from __future__ import annotations

import collections
import json
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt

from .models import AutomationLog, AutomationRule
from .webhooks import active_secrets, sign

INBOX_PATH = "/demo/webhook-inbox/"
DEMO_USERNAME = "demo"
PASSWORD_FILE_NAME = ".demo-password"  # noqa: S105 (a file name, not a password)


def password_file() -> Path:
    return Path(settings.BASE_DIR) / PASSWORD_FILE_NAME


def demo_password() -> str:
    """``DEMO_PASSWORD`` if set, else the password stored in ``.demo-password`` (created once)."""
    if settings.DEMO_PASSWORD:
        return settings.DEMO_PASSWORD
    path = password_file()
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password


def demo_login_hint() -> dict[str, str] | None:
    """Who to log in as and where the password is (never the password itself: the hint is a web page);
    None until seed_demo has created the demo owner."""
    if not get_user_model().objects.filter(username=DEMO_USERNAME).exists():
        return None
    return {
        "username": DEMO_USERNAME,
        "password_from": "DEMO_PASSWORD" if settings.DEMO_PASSWORD else PASSWORD_FILE_NAME,
    }


def demo_rules(base_url: str) -> list[dict]:
    return [
        {
            "name": "Welcome email for new leads",
            "trigger_type": "record_created",
            "trigger_config": {},
            "conditions": {"match": "all", "rules": [{"field": "email", "op": "is_not_empty"}]},
            "action_type": "send_email",
            "action_config": {
                "subject": "Welcome {{ name }}!",
                "body": "Hi {{ name|default('there') }},\n\nThanks for your interest. Your status is {{ status }}.",
            },
        },
        {
            "name": "Notify the inbox when a deal is won",
            "trigger_type": "status_changed",
            "trigger_config": {"to_status": "Closed Won"},
            "conditions": {},
            "action_type": "call_webhook",
            "action_config": {"url": base_url.rstrip("/") + INBOX_PATH, "method": "POST"},
        },
        {
            "name": "Mark leads without a company",
            "trigger_type": "record_created",
            "trigger_config": {},
            "conditions": {"match": "all", "rules": [{"field": "company", "op": "is_empty"}]},
            "action_type": "update_field",
            "action_config": {"field_name": "company", "new_value": "(unknown)"},
        },
        {
            "name": "Follow-up task when contacted",
            "trigger_type": "status_changed",
            "trigger_config": {"to_status": "Contacted"},
            "conditions": {},
            "action_type": "create_task",
            "action_config": {"title": "Follow up with {{ name }}", "description": "{{ company }} · {{ email }}"},
        },
    ]


def seed_demo_automations(*, workspace, entity, user, base_url: str) -> dict[str, list[str]]:
    """Create the demo rules that do not exist yet (matched by name) and point the demo webhook rule at
    this ``base_url``'s inbox (``make run PORT=9000`` after a first run on 8000). Returns the names of the
    rules ``created`` and ``moved``."""
    from .services import rule_create, rule_update

    done: dict[str, list[str]] = {"created": [], "moved": []}
    for spec in demo_rules(base_url):
        rule = AutomationRule.objects.filter(workspace=workspace, entity=entity, name=spec["name"]).first()
        if rule is None:
            rule_create(workspace=workspace, actor=user, entity=entity, is_active=True, **spec)
            done["created"].append(spec["name"])
        elif (url := _inbox_url_to_move(rule, spec)) is not None:
            rule_update(rule=rule, actor=user, action_config={**rule.action_config, "url": url})
            done["moved"].append(spec["name"])
    return done


def _inbox_url_to_move(rule: AutomationRule, spec: dict) -> str | None:
    """The new inbox URL when ``rule`` is the demo webhook rule still posting to an inbox at another base
    URL; None when it is up to date or was pointed somewhere else on purpose (kept as the user set it)."""
    wanted = spec["action_config"].get("url")
    current = (rule.action_config or {}).get("url")
    if rule.action_type != spec["action_type"] or not wanted or current == wanted:
        return None
    return wanted if urlsplit(current or "").path == INBOX_PATH else None


# --------------------------------------------------------------------------- the local webhook inbox

_inbox: collections.deque = collections.deque(maxlen=50)
_lock = threading.Lock()


def _signature_valid(headers: dict, body: bytes) -> bool | None:
    """Check the Standard Webhooks signature with the secret of the rule whose run sent it."""
    msg_id, timestamp = headers.get("webhook-id") or "", headers.get("webhook-timestamp") or ""
    sent = set((headers.get("webhook-signature") or "").split())
    if not (msg_id.startswith("msg_") and timestamp.isdigit() and sent):
        return None
    try:
        rule = AutomationLog.objects.select_related("automation").get(pk=msg_id.removeprefix("msg_")).automation
    except (AutomationLog.DoesNotExist, ValueError, ValidationError):
        return False
    return any(sign(secret, msg_id, int(timestamp), body) in sent for secret in active_secrets(rule))


@csrf_exempt
def webhook_inbox(request: HttpRequest) -> HttpResponse:
    """POST: store a delivery (answers 200). GET: the last 50 deliveries (HTML, or JSON with ?format=json)."""
    if not settings.DEMO_WEBHOOK_INBOX:
        raise Http404("The demo inbox is off (DEMO_WEBHOOK_INBOX=false).")
    if request.method in ("POST", "PUT", "PATCH"):
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = request.body[:65536]
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        entry = {
            "received_at": timezone.now().isoformat(),
            "method": request.method,
            "webhook_id": headers.get("webhook-id"),
            "signature_valid": _signature_valid(headers, body),
            "payload": payload,
        }
        with _lock:
            _inbox.appendleft(entry)
        return JsonResponse({"received": True})
    with _lock:
        entries = list(_inbox)
    if request.GET.get("format") == "json":
        return JsonResponse({"deliveries": entries})
    rows = "".join(
        f"<tr><td>{escape(e['received_at'])}</td><td>{escape(e['webhook_id'] or '')}</td>"
        f"<td>{'valid' if e['signature_valid'] else 'INVALID' if e['signature_valid'] is False else '-'}</td>"
        f"<td><pre>{escape(json.dumps(e['payload'], indent=2, ensure_ascii=False))}</pre></td></tr>"
        for e in entries
    )
    html = (
        "<!doctype html><title>Demo webhook inbox</title><meta http-equiv='refresh' content='5'>"
        "<style>body{font-family:sans-serif}td{vertical-align:top;border-top:1px solid #ccc;padding:4px}</style>"
        "<h1>Demo webhook inbox</h1><p>Deliveries of the demo <code>call_webhook</code> rule (newest first, "
        "refreshes every 5 s). Move a lead to <b>Closed Won</b> in the admin to see one arrive.</p>"
        f"<table><tr><th>received</th><th>webhook-id</th><th>signature</th><th>payload</th></tr>{rows}</table>"
    )
    return HttpResponse(html)
