"""Rule conditions on top of the trigger: nestable all/any groups of ``{field, op, value}``.

``{"match": "all"|"any", "rules": [{"field": "amount", "op": "gte", "value": 1000},
{"match": "any", "rules": [...]}]}``. ``{}`` always matches. Comparisons follow the entity's field
types: numbers compare as numbers, dates and date-times as dates, text ops (contains, starts_with,
ends_with) ignore case; ``changed`` compares with the previous data.
"""

from __future__ import annotations

from typing import Any

from workspaces.field_types import AnyType, FieldType, FieldValueError, field_types

from .exceptions import ConfigInvalid

NO_VALUE_OPS = {"is_empty", "is_not_empty", "changed"}
LIST_VALUE_OPS = {"in", "not_in"}
ORDER_OPS = {"gt", "gte", "lt", "lte"}
TEXT_OPS = {"contains", "not_contains", "starts_with", "ends_with"}
OPERATORS = ["eq", "neq", *sorted(ORDER_OPS), *sorted(TEXT_OPS), *sorted(LIST_VALUE_OPS), *sorted(NO_VALUE_OPS)]
# Accepted and stored as the documented operator: record filters spell "not equal" ``ne`` too.
OPERATOR_ALIASES = {"ne": "neq"}
ANY_TYPE = AnyType()  # a field not (or no longer) in the schema
MAX_DEPTH = 5
MAX_RULES = 50


def validate_conditions(conditions: Any, *, entity=None) -> dict:
    """Return normalised conditions or raise ``ConfigInvalid`` with keys like ``rules.1.op``."""
    if conditions in (None, {}, []):
        return {}
    errors: dict[str, list[str]] = {}
    counter = [0]
    cleaned = _validate_group(conditions, "", entity, errors, 1, counter)
    if counter[0] > MAX_RULES:
        errors.setdefault("rules", []).append(f"At most {MAX_RULES} conditions per rule.")
    if errors:
        raise ConfigInvalid(errors=errors)
    return cleaned


def _validate_group(group, path, entity, errors, depth, counter) -> dict:
    prefix = f"{path}." if path else ""
    if not isinstance(group, dict):
        errors[path or "non_field_errors"] = ['Must be a group {"match": "all"|"any", "rules": [...]}.']
        return {}
    if depth > MAX_DEPTH:
        errors[path or "non_field_errors"] = [f"Groups nest at most {MAX_DEPTH} deep."]
        return {}
    unknown = set(group) - {"match", "rules"}
    if unknown:
        errors[f"{prefix}{sorted(unknown)[0]}"] = ["Unknown key in a condition group (expected match, rules)."]
    match = group.get("match", "all")
    if match not in ("all", "any"):
        errors[f"{prefix}match"] = ['Must be "all" or "any".']
    rules = group.get("rules")
    if not isinstance(rules, list):
        errors[f"{prefix}rules"] = ["Must be a list of conditions."]
        return {}
    out = []
    for index, rule in enumerate(rules):
        rule_path = f"{prefix}rules.{index}"
        if isinstance(rule, dict) and "rules" in rule:
            out.append(_validate_group(rule, rule_path, entity, errors, depth + 1, counter))
        else:
            counter[0] += 1
            out.append(_validate_rule(rule, rule_path, entity, errors))
    return {"match": match, "rules": out}


def _validate_rule(rule, path, entity, errors) -> dict:
    if not isinstance(rule, dict):
        errors[path] = ['Must be {"field", "op", "value"}.']
        return {}
    unknown = set(rule) - {"field", "op", "value"}
    if unknown:
        errors[f"{path}.{sorted(unknown)[0]}"] = ["Unknown key in a condition (expected field, op, value)."]
    field, op = rule.get("field"), rule.get("op")
    op = OPERATOR_ALIASES.get(op, op) if isinstance(op, str) else op
    spec = None
    if not isinstance(field, str) or not field:
        errors[f"{path}.field"] = ["A field name is required."]
    elif entity is not None:
        spec = entity.field(field)
        if spec is None:
            errors[f"{path}.field"] = [
                f"Unknown field '{field}'. Fields of {entity.name}: {', '.join(entity.field_names) or '(none)'}."
            ]
    if op not in OPERATORS:
        errors[f"{path}.op"] = [f"Unknown operator '{op}'. Choose one of: {', '.join(OPERATORS)}."]
        return dict(rule)
    out = {"field": field, "op": op}
    if op in NO_VALUE_OPS:
        if rule.get("value") is not None:
            errors[f"{path}.value"] = [f"'{op}' takes no value."]
        return out
    if "value" not in rule:
        errors[f"{path}.value"] = [f"'{op}' needs a value."]
        return out
    value = rule["value"]
    if op in ORDER_OPS and spec is not None and not field_types.get(spec["type"]).ordered:
        errors[f"{path}.op"] = [f"'{op}' does not apply to {spec['type']} fields."]
        return out
    if op in TEXT_OPS:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            errors[f"{path}.value"] = ["Must be text."]
        out["value"] = value
        return out
    if op in LIST_VALUE_OPS:
        if not isinstance(value, list):
            errors[f"{path}.value"] = [f"'{op}' needs a list of values."]
            return out
        try:
            out["value"] = [_clean_value(v, spec) for v in value]
        except FieldValueError as exc:
            errors[f"{path}.value"] = [str(exc)]
        return out
    try:
        out["value"] = _clean_value(value, spec)
    except FieldValueError as exc:
        errors[f"{path}.value"] = [str(exc)]
    return out


def _clean_value(value, spec):
    if spec is None or value is None:
        return value
    return field_types.get(spec["type"]).clean_condition_value(value, spec)


# --------------------------------------------------------------------------- evaluation


def evaluate(conditions: dict | None, data: dict, old_data: dict | None = None, *, entity=None) -> bool:
    """True when ``data`` satisfies the conditions (``{}`` / ``None`` always does)."""
    if not conditions:
        return True
    types = {
        spec["name"]: field_types.get(spec["type"]) if spec["type"] in field_types else ANY_TYPE
        for spec in (entity.fields if entity is not None else [])
    }
    return _eval_group(conditions, data or {}, old_data, types)


def _eval_group(group, data, old_data, types) -> bool:
    results = (
        _eval_group(rule, data, old_data, types) if "rules" in rule else _eval_rule(rule, data, old_data, types)
        for rule in group.get("rules", [])
    )
    return any(results) if group.get("match") == "any" else all(results)


def _is_empty(value) -> bool:
    return value is None or value == "" or value == []


def _eval_rule(rule, data, old_data, types: dict[str, FieldType]) -> bool:
    field, op, expected = rule["field"], rule["op"], rule.get("value")
    actual = data.get(field)
    ftype = types.get(field, ANY_TYPE)
    if op == "changed":
        return old_data is not None and old_data.get(field) != actual
    if op == "is_empty":
        return _is_empty(actual)
    if op == "is_not_empty":
        return not _is_empty(actual)
    if op in ("eq", "neq"):
        if isinstance(actual, list) and not isinstance(expected, list):
            equal = actual == [expected]
        else:
            equal = ftype.equals(actual, expected)
        return equal if op == "eq" else not equal
    if op in ("in", "not_in"):
        options = expected or []
        hit = any(v in options for v in actual) if isinstance(actual, list) else ftype.is_in(actual, options)
        return hit if op == "in" else not hit
    if op in TEXT_OPS:
        if isinstance(actual, list):
            hit = (
                any(str(v).lower() == str(expected).lower() for v in actual)
                if op in ("contains", "not_contains")
                else False
            )
            return hit if op != "not_contains" else not hit
        text = "" if actual is None else str(actual).lower()
        needle = str(expected).lower()
        if op == "contains":
            return needle in text
        if op == "not_contains":
            return needle not in text
        if op == "starts_with":
            return actual is not None and text.startswith(needle)
        return actual is not None and text.endswith(needle)
    left, right = ftype.sort_key(actual), ftype.sort_key(expected)
    if left is None or right is None or type(left) is not type(right):
        return False
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    return left <= right
