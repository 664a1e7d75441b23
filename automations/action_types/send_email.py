"""``send_email``: one email to one recipient, built from the rule's subject and body templates."""

from __future__ import annotations

import smtplib
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused, AnymailRequestsAPIError
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.validators import EmailValidator
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from rest_framework import serializers

from ..context import RunContext
from ..exceptions import PermanentActionError, RetryableActionError
from ..templating import render
from .base import ActionType
from .fields import TemplateField

EMAIL_TEMPLATE = "automations/email.html"
TRANSIENT_HTTP_STATUSES = frozenset({408, 429})
_email_validator = EmailValidator()


def clean_recipient(value: Any) -> str:
    """A single valid address: no lists (``a@x.com, b@y.com``), no display names, no CR/LF. Raises
    ``ValueError`` with a message for the user."""
    if not isinstance(value, str):
        raise ValueError("The recipient must be an email address.")
    address = value.strip()
    if not address:
        raise ValueError("The recipient is empty.")
    if any(ch in address for ch in ",;<>\"'\r\n\t ") or address.count("@") != 1:
        raise ValueError(f"'{address[:100]}' is not a single email address.")
    try:
        _email_validator(address)
    except DjangoValidationError:
        raise ValueError(f"'{address[:100]}' is not a valid email address.") from None
    return address


def _provider_message(exc: Exception) -> str:
    """The provider's error text (anymail's own ``str()`` can fail on partial responses)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = " ".join(str(arg) for arg in exc.args)
    status = getattr(exc, "status_code", None)
    if status is not None and str(status) not in text:
        text = f"{text} (HTTP {status})"
    return text[:1000]


class SendEmailConfigSerializer(serializers.Serializer):
    subject = TemplateField(mode="subject", max_length=998)
    body = TemplateField(mode="html", max_length=100_000)
    to_email = TemplateField(mode="subject", required=False, allow_blank=True, max_length=320)

    def validate_to_email(self, value: str) -> str:
        if value and "{" not in value:  # a literal address is checked now, a template when it renders
            try:
                return clean_recipient(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value


def _body_html(body: str, variables: dict[str, Any]) -> str:
    """The body rendered with every value HTML-escaped; line breaks become ``<br>``."""
    html = render(body, variables, mode="html")
    return html.replace("\r\n", "\n").replace("\n", "<br>\n")


class SendEmail(ActionType):
    """Send an email (the seed's ``send_email``).

    Config: ``subject`` and ``body`` templates, optional ``to_email`` (a literal address or a template,
    e.g. ``{{owner_email}}``); without it the record's ``email`` field is the recipient. The HTML part
    escapes record values and keeps line breaks, wrapped in ``templates/automations/email.html``; a
    plain-text part is always included. Sent with the default mailer (``EMAIL_PROVIDER``). Transient
    provider errors (network, 408/429/5xx, SMTP 4xx) retry; others fail with the provider's message.

    Result: ``{"recipient", "subject", "sent": true, "message_id"}``.
    """

    name = "send_email"
    label = "Send email"
    config_serializer = SendEmailConfigSerializer

    def build(self, ctx: RunContext) -> dict[str, Any]:
        """Render recipient, subject, HTML and text; raises ``PermanentActionError`` when they are unusable."""
        config = ctx.config or {}
        variables = ctx.template_variables()
        if config.get("to_email"):
            raw_recipient = render(config["to_email"], variables, mode="subject")
        else:
            raw_recipient = (ctx.record.get("data") or {}).get("email")
            if not raw_recipient:
                raise PermanentActionError("No recipient: the record has no 'email' value and no to_email is set.")
        try:
            recipient = clean_recipient(raw_recipient)
        except ValueError as exc:
            raise PermanentActionError(f"Invalid recipient: {exc}") from None
        subject = render(config.get("subject", ""), variables, mode="subject").strip()
        body = config.get("body", "")
        html = render_to_string(
            EMAIL_TEMPLATE,
            {
                "subject": subject,
                "body": mark_safe(_body_html(body, variables)),  # noqa: S308 - values escaped by the html mode
                "automation_name": ctx.rule.name,
                "entity_name": getattr(ctx.entity, "name", ""),
            },
        )
        text = render(body, variables, mode="text")
        return {"to": recipient, "from": settings.FROM_EMAIL, "subject": subject, "html": html, "text": text}

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        email = self.build(ctx)
        headers = {"X-Automation-Delivery-Id": ctx.delivery_id}
        mailer = (getattr(settings, "MAILERS", {}).get("default") or {}).get("BACKEND", "")
        if not mailer.startswith("anymail."):
            # Django's own backends generate a fresh Message-ID per send: fix it so the log can show it.
            headers["Message-ID"] = make_msgid(domain=settings.FROM_EMAIL.rpartition("@")[2] or None)
        message = EmailMultiAlternatives(
            subject=email["subject"], body=email["text"], from_email=email["from"], to=[email["to"]], headers=headers
        )
        message.attach_alternative(email["html"], "text/html")
        try:
            message.send()
        except AnymailRecipientsRefused as exc:
            raise PermanentActionError(f"The email provider refused the recipient: {_provider_message(exc)}") from None
        except AnymailAPIError as exc:
            status = exc.status_code
            transient = (status is None and isinstance(exc, AnymailRequestsAPIError)) or (
                status is not None and (status in TRANSIENT_HTTP_STATUSES or status >= 500)
            )
            error = RetryableActionError if transient else PermanentActionError
            raise error(f"The email provider failed: {_provider_message(exc)}") from None
        except AnymailError as exc:
            raise PermanentActionError(f"The email could not be sent: {_provider_message(exc)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = RetryableActionError if codes and all(400 <= c < 500 for c in codes) else PermanentActionError
            raise error(f"The mail server refused the recipient: {exc.recipients}") from None
        except smtplib.SMTPResponseException as exc:
            error = RetryableActionError if 400 <= exc.smtp_code < 500 else PermanentActionError
            raise error(f"The mail server answered {exc.smtp_code}: {exc.smtp_error!r}") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise RetryableActionError(f"The mail server disconnected: {exc}") from None
        except smtplib.SMTPException as exc:  # before OSError: SMTPException subclasses it
            raise PermanentActionError(f"The email could not be sent: {exc}") from None
        except OSError as exc:
            raise RetryableActionError(f"Could not reach the mail server: {exc}") from None
        status = getattr(message, "anymail_status", None)
        message_id = getattr(status, "message_id", None) if status is not None else headers.get("Message-ID")
        return {
            "recipient": email["to"],
            "subject": email["subject"],
            "sent": True,
            "message_id": str(message_id) if message_id is not None else None,
        }

    def describe_result(self, result):
        """Recipient, subject, whether it was sent, and the provider's message id."""
        if not isinstance(result, dict) or not result:
            return super().describe_result(result)
        return format_html(
            "<p>To: <strong>{}</strong><br>Subject: <strong>{}</strong><br>Sent: {}<br>Message-ID: {}</p>",
            result.get("recipient", ""),
            result.get("subject", ""),
            "yes" if result.get("sent") else "no",
            result.get("message_id") or "—",
        )

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        return self.build(ctx)
