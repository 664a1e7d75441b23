"""How runs, step previews, durations and times read in the admin (safe HTML: every value a rule's author
or a record wrote is escaped by ``format_html``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .action_types.base import json_html
from .models import RunStatus
from .step_types import step_type

STATUS_COLOURS = {
    RunStatus.SUCCESS: "#1a7f37",
    RunStatus.ERROR: "#ba2121",
    RunStatus.RETRYING: "#9a6700",
    RunStatus.SKIPPED: "#57606a",
    "waiting": "#0969da",
}
UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def duration_text(seconds: int | float | None) -> str:
    """``90061`` -> "1 day 1 hour 1 minute 1 second"; negative values read as the same length."""
    if seconds is None:
        return "—"
    left = abs(int(seconds))
    if left == 0:
        return "0 seconds"
    parts = []
    for name, size in UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts)


def zone_of(name: str | None) -> dt.tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def parse_moment(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def moment_text(value: Any, tz: dt.tzinfo | None = None) -> str:
    """An ISO time as people read it, in ``tz`` (the site's time zone by default): "Mon 6 Jan 2025, 09:00"."""
    moment = parse_moment(value)
    if moment is None:
        return str(value) if value else "—"
    local = moment.astimezone(tz) if tz is not None else timezone.localtime(moment)
    return f"{local:%a %-d %b %Y, %H:%M}" + (f":{local:%S}" if local.second else "")


def status_html(status: str, label: str | None = None) -> SafeString:
    return format_html(
        '<strong class="run-status" style="color: {}">{}</strong>',
        STATUS_COLOURS.get(status, "inherit"),
        label or str(status).capitalize(),
    )


def type_label(name: str) -> str:
    try:
        return str(step_type(name).label or name)
    except KeyError:
        return str(name)


def _json_text(text: str) -> str | None:
    """A string holding a JSON object or list, indented; None for anything else."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def value_html(key: str, value: Any) -> SafeString | str:
    """One value of a preview: times readable, durations in words, JSON indented, text kept as written."""
    if key.endswith("_seconds") and isinstance(value, int | float) and not isinstance(value, bool):
        return duration_text(value)
    if key.endswith("_at") and parse_moment(value):
        return moment_text(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json_html(value)
    if value is None or value == "":
        return "—"
    text = str(value)
    pretty = _json_text(text)
    if pretty is not None:
        return format_html('<pre class="preview-text">{}</pre>', pretty)
    if "\n" in text:
        return format_html('<pre class="preview-text">{}</pre>', text)
    return text


WORDS = {"url": "URL", "id": "ID", "json": "JSON"}


def key_label(key: str, value: Any = None) -> str:
    """``waits_seconds`` (shown as a duration) -> "Waits"; ``url`` -> "URL"; ``record_id`` -> "Record ID"."""
    if key.endswith("_seconds") and isinstance(value, int | float) and not isinstance(value, bool):
        key = key.removesuffix("_seconds")
    words = " ".join(WORDS.get(word, word) for word in key.split("_"))
    return words[:1].upper() + words[1:]


def preview_rows(preview: Any) -> list[tuple[str, SafeString | str]]:
    """A step's dry-run preview as (label, value) rows, whatever the step type (an email's HTML is shown
    apart, in a sandboxed frame; an empty ``…_error`` is left out)."""
    if not isinstance(preview, dict):
        return [("Preview", json_html(preview))]
    return [
        (key_label(key, value), value_html(key, value))
        for key, value in preview.items()
        if key != "html" and not (key.endswith("_error") and value in (None, ""))
    ]


def step_blocks(steps: list[dict], *, dry_run: bool) -> list[dict[str, Any]]:
    """The steps of a test (dry run: each preview; real run: each ledger entry) for the test page."""
    blocks = []
    for index, step in enumerate(steps):
        name = str(step.get("type"))
        block: dict[str, Any] = {
            "number": index + 1,
            "label": type_label(name),
            "error": step.get("error") or "",
            "email_html": None,
        }
        if dry_run:
            preview = step.get("preview")
            block["rows"] = preview_rows(preview) if preview is not None else []
            if isinstance(preview, dict) and isinstance(preview.get("html"), str):
                block["email_html"] = preview["html"]
        else:
            block["status"] = status_html(step.get("status") or "", None)
            block["result"] = describe_result(name, step.get("result"))
        blocks.append(block)
    return blocks


def describe_result(type_name: str, result: Any) -> SafeString | str:
    """A step's result as its type describes it (webhook request and response, email, task, ...)."""
    if result in (None, {}, ""):
        return "—"
    try:
        return step_type(type_name).describe_result(result)
    except KeyError:
        return json_html(result)


def ledger_html(ledger: list[dict]) -> SafeString:
    """A run's steps as a table: type, status, attempts, times, result and error of each."""
    rows = format_html_join(
        "",
        '<tr class="step-row step-status-{}"><td class="nowrap">{}</td><td class="nowrap">{}</td>'
        '<td class="nowrap">{}</td><td class="nowrap">{}</td><td class="nowrap">{}<br>{}</td>'
        '<td class="step-result">{}{}</td></tr>',
        (
            (
                state.get("status") or "",
                state.get("index", index) + 1,
                type_label(str(state.get("type"))),
                status_html(state.get("status") or "", None),
                state.get("attempts") or 0,
                f"started {moment_text(state.get('started_at'))}" if state.get("started_at") else "not started",
                f"finished {moment_text(state.get('finished_at'))}" if state.get("finished_at") else "",
                describe_result(str(state.get("type")), state.get("result")),
                format_html('<p class="step-error">{}</p>', state["error"]) if state.get("error") else "",
            )
            for index, state in enumerate(ledger)
        ),
    )
    return format_html(
        '<table class="step-ledger"><thead><tr><th>#</th><th>step</th><th>status</th><th>attempts</th>'
        "<th>when</th><th>result</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )
