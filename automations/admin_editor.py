"""What the admin's rule editor knows, read from the type registries (no type is named in the editor's
JavaScript): each trigger and step type with its config fields introspected from the type's own DRF
``config_serializer`` (kind, label, help, required, default, min/max, choices), the condition operators
offered per field type, the time zones, and an entity's schema (fields, status values, members) for the
dropdowns.

A type can say more about a field with the serializer field's ``style`` (DRF's place for rendering hints):
``choices_from`` (``fields``, ``moment_fields``, ``status_options``, ``members``, ``timezones``: the choices
come from the rule's entity or the time zone list), ``value_of`` (the value is one of the field named there:
its input follows that field's type), ``example`` (shown as the input's placeholder), ``choices`` (fixed
choices for a field that is not a ``ChoiceField``). ``BUILTIN_HINTS`` holds the same for the built-in
types whose serializers do not carry them yet; a hint on the serializer field wins.
"""

from __future__ import annotations

import inspect
import re
import zoneinfo
from functools import cache
from typing import Any

from rest_framework import fields as drf

from workspaces.field_types import field_types

from . import conditions
from .action_types.call_webhook import METHODS
from .action_types.fields import TemplateField
from .step_types import delay, step_type, step_type_names
from .trigger_types import TimezoneField, trigger_types

# Hints the built-in types' serializers do not carry yet (see the module docstring): keyed by type name,
# then config key. Moving them into each serializer field's ``style`` / ``help_text`` empties this table.
BUILTIN_HINTS: dict[str, dict[str, dict[str, Any]]] = {
    "field_updated": {"field_name": {"label": "Field", "choices_from": "fields"}},
    "status_changed": {
        "to_status": {"choices_from": "status_options"},
        "from_status": {"choices_from": "status_options"},
    },
    "scheduled": {
        "cron": {"label": "Schedule (cron)", "example": "0 9 * * 1"},
        "timezone": {"label": "Time zone", "help": "The time zone of the schedule's times."},
    },
    "date_reached": {
        "field": {"label": "Date field", "choices_from": "moment_fields"},
        "offset_seconds": {
            "label": "Offset",
            "help": "How long after the date to fire (a negative number: before it); at most 366 days.",
        },
        "timezone": {"label": "Time zone", "help": "For a date without a time: the time zone whose midnight it means."},
    },
    "send_email": {
        "subject": {
            "help": "The email's subject line (a template; no line breaks).",
            "example": "Welcome, {{ name }}!",
        },
        "body": {
            "help": "The message (a template). Record values are HTML-escaped; line breaks are kept.",
            "example": "Hi {{ name|default('there') }},\n\nThanks for your interest.",
        },
        "to_email": {
            "label": "To",
            "help": "Who receives it: an address or a template. Empty: the record's email field.",
            "example": "{{ email }}",
        },
    },
    "call_webhook": {
        "url": {
            "label": "URL",
            "help": "Where to send the request (http or https; private addresses are refused).",
            "example": "https://hooks.example.com/deals",
        },
        "method": {"help": "The HTTP method.", "choices": [[method, method] for method in METHODS]},
        "headers": {
            "help": "Extra request headers, name → value (Authorization, Cookie and X-Api-Key are stored redacted).",
            "example": '{"X-Team": "sales"}',
        },
        "secret_headers": {
            "help": "Names of more headers whose values are stored redacted in the run log, comma-separated.",
            "example": "X-Signature-Key",
        },
        "body_template": {
            "label": "Body (JSON)",
            "help": "A JSON body (a template; values are JSON-escaped). Empty: the standard payload with the "
            "record. {{ payload|tojson }} inserts that payload.",
            "example": '{"deal": "{{ name }}", "amount": {{ amount|tojson }}}',
        },
    },
    "update_field": {
        "field_name": {"label": "Field", "help": "The field of the record to set.", "choices_from": "fields"},
        "new_value": {
            "help": "The new value: fixed, or a template such as {{ amount }} (converted to the field's type).",
            "value_of": "field_name",
        },
    },
    "create_task": {
        "title": {"help": "The task's title (a template).", "example": "Call {{ name }}"},
        "description": {"help": "More about the task (a template).", "example": "Lead from {{ company }}"},
        "due_in_days": {"label": "Due in (days)", "help": "Due this many days after the run (empty: no due date)."},
        "assignee": {"help": "A workspace member (username or email); empty: nobody.", "choices_from": "members"},
    },
    "delay": {
        "seconds": {"label": "Wait for", "help": "How long to wait (1 second to 31 days)."},
        "until_field": {
            "label": "Or wait until the date in",
            "help": "A date or date-time field of the record (use this or “Wait for”, not both).",
            "choices_from": "moment_fields",
        },
        "offset_seconds": {
            "label": "Offset from that date",
            "help": "With a date field: how long after that moment to go on (a negative number: before).",
        },
    },
}

# What the built-in types do, for people (their docstrings speak to developers); a type without an entry
# here is described by the first paragraph of its docstring.
BUILTIN_DESCRIPTIONS = {
    "record_created": "When a record is created (imports and bulk creates too: once per record).",
    "record_updated": "When any value of a record changes.",
    "field_updated": "When the value of one field changes.",
    "status_changed": "When the record's status changes to a given value (and, optionally, from a given value).",
    "record_deleted": "When a record is deleted (the steps see the record as it was).",
    "conditions_met": "When a record starts matching the conditions below (not again while it keeps matching).",
    "scheduled": "On a schedule (cron), for every record that matches the conditions at that moment.",
    "date_reached": "When a date of the record is reached (or a given time before or after it), once per date.",
    "send_email": "Send one email, written with the subject and body below.",
    "call_webhook": "Send a signed HTTP request to a URL; the receiver's answer is kept in the run log.",
    "update_field": "Set one field of the record; the next steps see the new value.",
    "create_task": "Create a task in the workspace, linked to the record.",
    "delay": "Wait before the next step: for a fixed time, or until the date in a field of the record (plus or "
    "minus an offset). A waiting run holds nothing.",
}

# The HTML input that edits a value of each field type in the conditions builder and in ``value_of``
# fields; any other type gets a text box.
VALUE_INPUTS = {
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "email": "email",
    "url": "url",
    "select": "option",
    "multi_select": "option",
    "long_text": "textarea",
}

OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "in": "is one of",
    "not_in": "is none of",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "changed": "changed (on updates)",
}

# Template inputs longer than this are text areas.
LONG_TEXT = 2_000


def _jsonable_default(field: drf.Field) -> Any:
    default = field.default
    if default is drf.empty:
        return None
    return default() if callable(default) else default


def _hints(type_name: str, name: str, field: drf.Field) -> dict[str, Any]:
    hints = dict(BUILTIN_HINTS.get(type_name, {}).get(name, {}))
    hints.update({key: value for key, value in (field.style or {}).items() if key != "base_template"})
    return hints


def field_descriptor(type_name: str, name: str, field: drf.Field) -> dict[str, Any]:
    """One config option as the editor draws it: ``kind`` (text, template, integer, number, boolean,
    choice, list, json), label, help, required, default, bounds and choices."""
    hints = _hints(type_name, name, field)
    # DRF fills ``label`` in from the name when the field is bound: only a label given to the field wins.
    label = field._kwargs.get("label") or hints.get("label") or field.label or name.replace("_", " ").capitalize()
    descriptor: dict[str, Any] = {
        "name": name,
        "label": str(label),
        # A hint's help is written for the admin's people; the serializer's for API clients.
        "help": str(hints.get("help") or field.help_text or ""),
        "required": bool(field.required),
        "default": _jsonable_default(field),
        "allow_null": bool(getattr(field, "allow_null", False)),
    }
    if isinstance(field, drf.BooleanField):
        descriptor["kind"] = "boolean"
    elif isinstance(field, drf.ChoiceField):  # MultipleChoiceField too
        descriptor["kind"] = "multiple_choice" if isinstance(field, drf.MultipleChoiceField) else "choice"
        descriptor["choices"] = [[str(value), str(label)] for value, label in field.choices.items()]
    elif isinstance(field, drf.IntegerField):
        descriptor["kind"] = "integer"
    elif isinstance(field, drf.FloatField | drf.DecimalField):
        descriptor["kind"] = "number"
    elif isinstance(field, TimezoneField):
        descriptor["kind"] = "choice"
        descriptor["choices_from"] = "timezones"
    elif isinstance(field, TemplateField):
        descriptor["kind"] = "template"
        descriptor["mode"] = field.mode
        descriptor["multiline"] = (field.max_length or 0) > LONG_TEXT
    elif isinstance(field, drf.CharField):
        descriptor["kind"] = "text"
    elif isinstance(field, drf.ListField):
        descriptor["kind"] = "list"
    else:  # JSONField, DictField and anything else: a value in JSON
        descriptor["kind"] = "json"
    for bound in ("min_value", "max_value", "max_length"):
        value = getattr(field, bound, None)
        if value is not None:
            descriptor[bound] = value
    if "choices" in hints and "choices" not in descriptor:
        descriptor["kind"] = "choice"
        descriptor["choices"] = [[str(value), str(label)] for value, label in hints["choices"]]
    for key in ("choices_from", "value_of", "example"):
        if key in hints:
            descriptor[key] = hints[key]
    if name == "seconds" or name.endswith("_seconds"):
        descriptor["unit"] = "seconds"  # edited as a number and a unit (minutes, hours, days)
    return descriptor


def _description(kind) -> str:
    """What the type does, for people: ``BUILTIN_DESCRIPTIONS``, else the first paragraph of its docstring."""
    if kind.name in BUILTIN_DESCRIPTIONS:
        return BUILTIN_DESCRIPTIONS[kind.name]
    doc = inspect.getdoc(type(kind)) or ""
    first = doc.split("\n\n")[0]
    return re.sub(r"``([^`]*)``", r"\1", " ".join(first.split()))


def result_keys(kind) -> list[str]:
    """The keys of a step's result (``{{ steps[i].<key> }}``): the type's ``result_keys`` when it declares
    them, else the names its docstring lists after "Result:"."""
    declared = getattr(kind, "result_keys", None)
    if declared is not None:
        return list(declared)
    doc = inspect.getdoc(type(kind)) or ""
    match = re.search(r"Result:\s*``\{(.*?)\}``", doc, re.DOTALL)
    return re.findall(r'"(\w+)"', match.group(1)) if match else []


def type_descriptor(kind) -> dict[str, Any]:
    serializer = kind.config_serializer()
    return {
        "name": kind.name,
        "label": str(kind.label or kind.name),
        "description": _description(kind),
        "fields": [field_descriptor(kind.name, name, field) for name, field in serializer.fields.items()],
    }


def editor_schema() -> dict[str, Any]:
    """Every registered trigger and step type with its fields, and the operators; read at request time so
    a type registered after start-up (a plug-in, a test) has its form at once."""
    triggers = []
    for trigger in trigger_types:
        triggers.append({**type_descriptor(trigger), "time_based": bool(trigger.time_based)})
    steps = []
    for name in step_type_names():
        kind = step_type(name)
        steps.append({**type_descriptor(kind), "result_keys": result_keys(kind), "is_delay": kind is delay})
    return {
        "triggers": triggers,
        "steps": steps,
        "operators": [
            {"op": op, "label": OPERATOR_LABELS.get(op, op), "takes": operator_takes(op)} for op in conditions.OPERATORS
        ],
        "timezones": timezones(),
        "max_steps": 20,
    }


def operator_takes(op: str) -> str:
    if op in conditions.NO_VALUE_OPS:
        return "none"
    if op in conditions.LIST_VALUE_OPS:
        return "list"
    return "value"


def operators_for(field_type) -> list[str]:
    """The operators that mean something for a field type: comparisons where the type is ordered (as the
    validator requires), text matching where it holds text or options, the rest everywhere."""
    offered = []
    for op in conditions.OPERATORS:
        if op in conditions.ORDER_OPS and not field_type.ordered:
            continue
        if op in conditions.TEXT_OPS and not (field_type.searchable or field_type.needs_options):
            continue
        offered.append(op)
    return offered


@cache
def timezones() -> list[str]:
    """IANA time zone names, UTC first."""
    return ["UTC", *sorted(name for name in zoneinfo.available_timezones() if name != "UTC")]


def entity_schema(entity, *, members: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """An entity as the editor's dropdowns need it: its fields (type, options, the operators they take,
    the input for a value), its status field and values, and the workspace's members."""
    described = []
    for spec in entity.fields or []:
        ftype = field_types.get(spec["type"]) if spec.get("type") in field_types else None
        described.append(
            {
                "name": spec["name"],
                "label": spec.get("label") or spec["name"],
                "type": spec.get("type"),
                "options": list(spec.get("options") or []),
                "is_moment": bool(ftype and ftype.is_moment),
                "operators": operators_for(ftype) if ftype else list(conditions.OPERATORS),
                "input": VALUE_INPUTS.get(spec.get("type"), "text"),
            }
        )
    status = entity.field(entity.status_field)
    return {
        "id": str(entity.pk),
        "name": entity.name,
        "workspace_id": str(entity.workspace_id),
        "fields": described,
        "status_field": entity.status_field,
        "status_options": list((status or {}).get("options") or []),
        "members": list(members),
    }
