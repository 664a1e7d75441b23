"""Entity field types: a registry (``field_types``) keyed by the type name stored in
``Entity.fields[].type``.

Each type cleans one value (``clean``), says how values compare (``sort_key``, ``equals``, ``is_in``:
used by rule conditions) and how a record filter on it reads (``lookup_q``: used by the records API), so
record validation, filters, conditions and the ``update_field`` action agree on what a value of that
type is. Adding a type is one class registered at the bottom of this module.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db.models import Q
from django.utils.dateparse import parse_date, parse_datetime

from config.registry import Registry


class FieldValueError(ValueError):
    """A value does not fit its field; the message is shown to the user."""


# Record filter lookups (``?amount__gte=100``): the lookup after ``__`` -> its Django lookup (None: "not
# equal", which also matches records without a value). ``neq`` is the documented spelling, as in rule
# conditions; ``ne`` is accepted too.
LOOKUPS: dict[str, str | None] = {
    "eq": "",
    "neq": None,
    "ne": None,
    "gt": "__gt",
    "gte": "__gte",
    "lt": "__lt",
    "lte": "__lte",
    "contains": "__icontains",
    "in": "__in",
    "isnull": "__isnull",
}
DOCUMENTED_LOOKUPS = [name for name in LOOKUPS if name != "ne"]


class FieldType:
    """A field type: cleans values, compares them, filters on them.

    - ``clean(value, spec)``: the stored form of a value, or ``FieldValueError``.
    - ``sort_key(value)``: a form that orders correctly for the type (``None`` if it cannot);
      ``compare_by_key`` types (numbers, dates) also test equality on it.
    - ``ordered``: whether gt/gte/lt/lte mean something; ``searchable``: whether ``?search=`` looks in it;
      ``names_records``: whether a value can name its record in lists (a record's label is its ``name``,
      else its first such field with a value).
    - ``lookup_q(path, lookup, raw, spec)``: the ``Q`` of one record filter on a JSON path.
    """

    name: ClassVar[str] = ""
    needs_options: ClassVar[bool] = False
    # A point in time: date and date-time fields can drive delays and date_reached rules (``moment``).
    is_moment: ClassVar[bool] = False
    ordered: ClassVar[bool] = True
    searchable: ClassVar[bool] = False
    names_records: ClassVar[bool] = False
    compare_by_key: ClassVar[bool] = False

    def clean(self, value: Any, spec: dict) -> Any:
        """Return the stored form of ``value`` or raise ``FieldValueError``."""
        raise NotImplementedError

    def is_empty(self, value: Any) -> bool:
        return value is None or value == "" or value == []

    # ------------------------------------------------------------------ comparing (rule conditions)

    def clean_condition_value(self, value: Any, spec: dict) -> Any:
        """A value a condition compares this field with, cleaned as the field would store it."""
        return self.clean(value, spec)

    def sort_key(self, value: Any) -> Any:
        return None if value is None else str(value)

    def moment(self, value: Any, tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
        """The value as a point in time (aware), for types that are one (``is_moment``); else None."""
        return None

    def equals(self, actual: Any, expected: Any) -> bool:
        if self.compare_by_key:
            return self.sort_key(actual) == self.sort_key(expected)
        return actual == expected

    def is_in(self, actual: Any, options: list) -> bool:
        if self.compare_by_key:
            return self.sort_key(actual) in {self.sort_key(option) for option in options}
        return actual in options

    # ------------------------------------------------------------------ filtering (records API)

    def filter_value(self, lookup: str, raw: str, spec: dict) -> Any:
        """The value a filter compares with: cleaned like a stored value (``contains`` takes raw text)."""
        if lookup == "in":
            return [self.clean(part, spec) for part in raw.split(",")]
        if lookup == "contains":
            return raw
        return self.clean(raw, spec)

    def lookup_q(self, path: str, lookup: str, raw: str, spec: dict) -> Q:
        """The condition of ``?<field>__<lookup>=<raw>`` on ``path`` (``data__<field>``); raises
        ``FieldValueError`` for a value the field cannot hold."""
        if lookup == "isnull":
            if raw.lower() not in ("true", "false"):
                raise FieldValueError("Must be true or false.")
            empty = Q(**{f"{path}__isnull": True}) | Q(**{path: None})  # missing key or JSON null
            return empty if raw.lower() == "true" else ~empty
        value = self.filter_value(lookup, raw, spec)
        if LOOKUPS[lookup] is None:  # records without a value are "not equal" too
            return ~Q(**{path: value}) | Q(**{f"{path}__isnull": True})
        return Q(**{f"{path}{LOOKUPS[lookup]}": value})


class AnyType(FieldType):
    """A value whose field is not (or no longer) in the entity's schema: numbers compare as numbers,
    anything else as text. Not registered: no field can be created with it."""

    name = ""

    def sort_key(self, value):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Decimal(str(value))
        return super().sort_key(value)


class TextType(FieldType):
    """Single line of text."""

    name = "text"
    searchable = True
    names_records = True
    max_length = 10_000

    def clean(self, value, spec):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldValueError("Must be a string.")
        value = str(value)
        if "\x00" in value:
            raise FieldValueError("Must not contain NUL characters.")
        if len(value) > self.max_length:
            raise FieldValueError(f"Must be at most {self.max_length} characters.")
        return value


class LongTextType(TextType):
    """Multi-line text."""

    name = "long_text"
    names_records = False
    max_length = 200_000


class NumberType(FieldType):
    """Integer or decimal number (numeric strings are converted)."""

    name = "number"
    compare_by_key = True
    # Beyond this, databases and JSON clients disagree on precision; refuse rather than corrupt.
    max_abs = 10**21

    def clean(self, value, spec):
        if isinstance(value, bool):
            raise FieldValueError("Must be a number.")
        if isinstance(value, str):
            text = value.strip()
            if len(text) > 100:
                raise FieldValueError("Must be a number.")
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise FieldValueError("Must be a number.") from None
            if not number.is_finite():
                raise FieldValueError("Must be a finite number.")
            if abs(number) >= self.max_abs:
                raise FieldValueError("Must be a number between -1e21 and 1e21.")
            if number == number.to_integral_value() and "." not in text and "e" not in text.lower():
                return int(number)
            value = float(number)
        if isinstance(value, int):
            if abs(value) >= self.max_abs:
                raise FieldValueError("Must be a number between -1e21 and 1e21.")
            return value
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise FieldValueError("Must be a finite number.")
            if abs(value) >= self.max_abs:
                raise FieldValueError("Must be a number between -1e21 and 1e21.")
            return int(value) if value.is_integer() and abs(value) < 2**53 else value
        raise FieldValueError("Must be a number.")

    def sort_key(self, value):
        if value is None:
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None


class BooleanType(FieldType):
    """true / false (the strings "true"/"false"/"1"/"0"/"yes"/"no" are converted)."""

    name = "boolean"
    ordered = False
    truthy = {"true", "1", "yes", "on"}
    falsy = {"false", "0", "no", "off"}

    def clean(self, value, spec):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.truthy | self.falsy:
            return value.strip().lower() in self.truthy
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise FieldValueError("Must be true or false.")


class DateType(FieldType):
    """ISO date, stored as "YYYY-MM-DD"; as a moment, 00:00 of that day in the given time zone."""

    name = "date"
    compare_by_key = True
    is_moment = True

    def moment(self, value, tz=dt.UTC):
        day = self.sort_key(value) if value not in (None, "") else None
        return dt.datetime.combine(day, dt.time.min, tzinfo=tz).astimezone(dt.UTC) if day else None

    def clean(self, value, spec):
        if not isinstance(value, str):
            raise FieldValueError("Must be a date in the form YYYY-MM-DD.")
        try:
            parsed = parse_date(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise FieldValueError("Must be a date in the form YYYY-MM-DD.")
        return parsed.isoformat()

    def sort_key(self, value):
        if value is None:
            return None
        try:
            return parse_date(str(value)[:10])
        except ValueError:
            return None


class DateTimeType(FieldType):
    """ISO 8601 date-time, stored in UTC as "YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00"."""

    name = "datetime"
    compare_by_key = True
    is_moment = True

    def moment(self, value, tz=dt.UTC):
        return self.sort_key(value) if value not in (None, "") else None

    def clean(self, value, spec):
        if not isinstance(value, str):
            raise FieldValueError("Must be an ISO 8601 date-time.")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise FieldValueError("Must be an ISO 8601 date-time, e.g. 2025-01-15T10:00:00Z.")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).isoformat()

    def sort_key(self, value):
        if value is None:
            return None
        try:
            parsed = parse_datetime(str(value))
        except ValueError:
            return None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed


class EmailType(FieldType):
    """One email address."""

    name = "email"
    searchable = True
    validator = EmailValidator()
    invalid_message = "Enter a valid email address."

    def clean(self, value, spec):
        if not isinstance(value, str):
            raise FieldValueError("Must be an email address.")
        value = value.strip()
        if "\x00" in value or len(value) > 2000:
            raise FieldValueError(self.invalid_message)
        try:
            self.validator(value)
        except DjangoValidationError:
            raise FieldValueError(self.invalid_message) from None
        return value


class URLType(FieldType):
    """An http(s) URL."""

    name = "url"
    searchable = True
    validator = URLValidator(schemes=["http", "https"])
    invalid_message = "Enter a valid http(s) URL."

    def clean(self, value, spec):
        if not isinstance(value, str):
            raise FieldValueError("Must be a URL.")
        value = value.strip()
        if "\x00" in value or len(value) > 2000:
            raise FieldValueError(self.invalid_message)
        try:
            self.validator(value)
        except DjangoValidationError:
            raise FieldValueError(self.invalid_message) from None
        return value


class SelectType(FieldType):
    """One of the field's ``options``."""

    name = "select"
    needs_options = True
    searchable = True

    def clean(self, value, spec):
        options = spec.get("options") or []
        if not isinstance(value, str) or value not in options:
            raise FieldValueError(f"Must be one of: {', '.join(map(str, options))}.")
        return value


class MultiSelectType(FieldType):
    """A list of distinct ``options``."""

    name = "multi_select"
    needs_options = True
    ordered = False

    def clean(self, value, spec):
        options = spec.get("options") or []
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FieldValueError("Must be a list of options.")
        unknown = [v for v in value if v not in options]
        if unknown:
            raise FieldValueError(f"Unknown option(s) {', '.join(unknown)}; allowed: {', '.join(options)}.")
        return list(dict.fromkeys(value))

    def clean_condition_value(self, value, spec):
        # A single option compared with a multi_select (eq means "the list is exactly [value]").
        if isinstance(value, str):
            return SelectType().clean(value, spec)
        return self.clean(value, spec)

    def lookup_q(self, path, lookup, raw, spec):
        if lookup == "contains":  # the list holds this option
            return Q(**{f"{path}__contains": [raw]})
        return super().lookup_q(path, lookup, raw, spec)


field_types: Registry[FieldType] = Registry("field type")
for _type in (
    TextType(),
    LongTextType(),
    NumberType(),
    BooleanType(),
    DateType(),
    DateTimeType(),
    EmailType(),
    URLType(),
    SelectType(),
    MultiSelectType(),
):
    field_types.register(_type)

FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RESERVED_FIELD_NAMES = {"id", "created_at", "updated_at", "entity_id", "workspace_id", "data"}


def validate_field_specs(fields: Any) -> tuple[list[dict], dict[str, list[str]]]:
    """Validate an entity's field schema. Returns (normalised specs, errors keyed "fields.<i>.<key>")."""
    errors: dict[str, list[str]] = {}
    if not isinstance(fields, list):
        return [], {"fields": ["Must be a list of field definitions."]}
    if len(fields) > 200:
        return [], {"fields": ["At most 200 fields per entity."]}
    cleaned: list[dict] = []
    seen: set[str] = set()
    for index, spec in enumerate(fields):
        key = f"fields.{index}"
        if not isinstance(spec, dict):
            errors[key] = ["Must be an object with name and type."]
            continue
        unknown_keys = set(spec) - {"name", "type", "required", "options", "label", "description"}
        if unknown_keys:
            errors[key] = [f"Unknown key(s): {', '.join(sorted(unknown_keys))}."]
        name = spec.get("name")
        if not isinstance(name, str) or not FIELD_NAME_RE.match(name):
            errors[f"{key}.name"] = [
                "Must start with a letter or underscore and contain only letters, digits and underscores (max 63)."
            ]
        elif name in RESERVED_FIELD_NAMES:
            errors[f"{key}.name"] = [f"'{name}' is reserved."]
        elif name in seen:
            errors[f"{key}.name"] = [f"Duplicate field name '{name}'."]
        else:
            seen.add(name)
        ftype = spec.get("type")
        if ftype not in field_types:
            errors[f"{key}.type"] = [f"Unknown type. Choose one of: {', '.join(field_types.names())}."]
            continue
        required = spec.get("required", False)
        if not isinstance(required, bool):
            errors[f"{key}.required"] = ["Must be true or false."]
        options = spec.get("options")
        if field_types.get(ftype).needs_options:
            if (
                not isinstance(options, list)
                or not options
                or not all(isinstance(o, str) and o and "\x00" not in o and len(o) <= 255 for o in options)
                or len(set(options)) != len(options)
            ):
                errors[f"{key}.options"] = [
                    "A non-empty list of distinct strings (at most 255 characters each) is required for this type."
                ]
        elif options not in (None, []):
            errors[f"{key}.options"] = ["Only select and multi_select fields take options."]
        out = {"name": name, "type": ftype, "required": bool(required)}
        if field_types.get(ftype).needs_options:
            out["options"] = options
        for extra in ("label", "description"):
            value = spec.get(extra)
            if value is None:
                continue
            if not isinstance(value, str) or "\x00" in value or len(value) > 1000:
                errors[f"{key}.{extra}"] = ["Must be a string of at most 1000 characters."]
            else:
                out[extra] = value
        cleaned.append(out)
    return cleaned, errors


def record_label(fields: list[dict], data: dict | None) -> str | None:
    """What names a record for people: its ``name``, else its first field whose type names records
    (single-line text) with a value; None when it has neither."""
    data = data or {}
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    for spec in fields or []:
        value = data.get(spec.get("name"))
        names = spec.get("type") in field_types and field_types.get(spec["type"]).names_records
        if names and isinstance(value, str) and value.strip():
            return value.strip()
    return None


def clean_record_data(
    fields: list[dict], data: Any, *, partial: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate record ``data`` against ``fields``. Returns (cleaned data, errors keyed by field name).

    Unknown fields are rejected; with ``partial`` only the given keys are checked (required is not)."""
    if not isinstance(data, dict):
        return {}, {"data": ["Must be an object of field values."]}
    specs = {spec["name"]: spec for spec in fields}
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        spec = specs.get(key)
        if spec is None:
            errors[key] = [f"Unknown field '{key}'."]
            continue
        ftype = field_types.get(spec["type"])
        if ftype.is_empty(value):
            if spec.get("required"):
                errors[key] = ["This field is required."]
            else:
                cleaned[key] = None if value is None or value == "" else value
            continue
        try:
            cleaned[key] = ftype.clean(value, spec)
        except FieldValueError as exc:
            errors[key] = [str(exc)]
    if not partial:
        for name, spec in specs.items():
            if spec.get("required") and name not in data:
                errors[name] = ["This field is required."]
    return cleaned, errors
