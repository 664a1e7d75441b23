"""What a valid rule is, checked in one place for the API, the admin and the command: the trigger and its
config, the conditions, and the steps (1 to 20, each an action type or ``delay`` with its config), every
part through its registered type. Errors are keyed as clients send the parts: ``trigger_config.cron``,
``conditions.rules.0.op``, ``steps.2.config.url``.

A rule's steps may also come in the single-action form (``action_type`` + ``action_config``), which is
the first step."""

from __future__ import annotations

from typing import Any

from workspaces.models import Entity

from . import conditions as conditions_module
from .exceptions import ConfigInvalid, RuleInvalid
from .step_types import step_type, step_type_names
from .templating import step_references
from .trigger_types import trigger_types

MAX_STEPS = 20
STEP_KEYS = {"type", "config"}


def steps_from_input(fields: dict[str, Any], current: list[dict] | None = None) -> list[dict] | None:
    """The steps a create or update asks for: ``steps`` as given, or ``action_type`` / ``action_config`` as
    the first step (of ``current`` on an update; the other steps stay). ``None``: steps are not changed.
    Both forms with different content are refused."""
    single = {k: fields[k] for k in ("action_type", "action_config") if k in fields}
    if "steps" in fields:
        steps = fields["steps"]
        if single and isinstance(steps, list) and steps and isinstance(steps[0], dict):
            first = steps[0]
            if ("action_type" in single and single["action_type"] != first.get("type")) or (
                "action_config" in single and single["action_config"] != first.get("config", {})
            ):
                raise RuleInvalid(
                    errors={
                        "steps": [
                            "steps and action_type/action_config disagree: send one of them (action_type and "
                            "action_config are the first step)."
                        ]
                    }
                )
        return steps
    if not single:
        return None
    base = [dict(step) for step in (current or [])]
    first = dict(base[0]) if base else {"type": None, "config": {}}
    if "action_type" in single:
        if single["action_type"] != first.get("type"):
            first["config"] = {}
        first["type"] = single["action_type"]
    if "action_config" in single:
        first["config"] = single["action_config"]
    return [first, *base[1:]]


def _templates(value: Any, path: str):
    """Every string in a config (any of them may be a template), with its key path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _templates(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _templates(item, f"{path}.{index}")


def validate_steps(steps: Any, *, entity: Entity) -> list[dict]:
    """The cleaned steps, or ``RuleInvalid`` keyed ``steps.<i>.type`` / ``steps.<i>.config.<option>``."""
    if not isinstance(steps, list):
        raise RuleInvalid(errors={"steps": ['Must be a list of steps: [{"type": ..., "config": {...}}, ...].']})
    if not 1 <= len(steps) <= MAX_STEPS:
        raise RuleInvalid(errors={"steps": [f"A rule has 1 to {MAX_STEPS} steps (this one has {len(steps)})."]})
    errors: dict[str, list[str]] = {}
    cleaned: list[dict] = []
    names = step_type_names()
    for index, step in enumerate(steps):
        prefix = f"steps.{index}"
        if not isinstance(step, dict):
            errors[prefix] = ['Must be an object: {"type": ..., "config": {...}}.']
            continue
        for key in sorted(set(step) - STEP_KEYS):
            errors[f"{prefix}.{key}"] = [f"Unknown key '{key}'. A step has type and config."]
        name = step.get("type")
        if name not in names:
            errors[f"{prefix}.type"] = [f"Unknown step type '{name}'. Choose one of: {', '.join(names)}."]
            continue
        try:
            config = step_type(name).validate_config(step.get("config") or {}, entity=entity)
        except ConfigInvalid as exc:
            errors.update(exc.prefixed(f"{prefix}.config"))
            continue
        for path, text in _templates(step.get("config") or {}, f"{prefix}.config"):
            later = sorted(n for n in step_references(text) if n >= index)
            if later:
                errors.setdefault(path, []).append(
                    f"Refers to steps[{later[0]}], which is not an earlier step: step {index + 1} can use "
                    + (f"steps[0] to steps[{index - 1}]." if index else "no step results (it is the first).")
                )
        cleaned.append({"type": name, "config": config})
    if errors:
        raise RuleInvalid(errors=errors)
    return cleaned


def as_single_action(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Errors of the first step keyed as the single-action form sent it (``action_config.url``)."""
    renamed = {}
    for key, messages in errors.items():
        if key.startswith("steps.0.config."):
            key = "action_config." + key.removeprefix("steps.0.config.")
        elif key == "steps.0.config":
            key = "action_config"
        elif key == "steps.0.type":
            key = "action_type"
        renamed.setdefault(key, []).extend(messages)
    return renamed


def validate_rule_parts(
    *,
    entity: Entity,
    trigger_type: str,
    trigger_config: Any,
    steps: Any,
    conditions: Any,
    single_action: bool = False,
) -> dict[str, Any]:
    """Validate trigger, conditions and steps through their registered types. Returns the cleaned parts
    (``trigger_type``, ``trigger_config``, ``conditions``, ``steps``, and ``action_type`` /
    ``action_config`` mirroring the first step) or raises ``RuleInvalid`` keyed as the API's fields are
    (``single_action``: the steps came as ``action_type`` + ``action_config``, and the first step's errors
    are keyed so)."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    trigger = trigger_types.get(trigger_type) if trigger_type in trigger_types else None
    if trigger is None:
        errors["trigger_type"] = [
            f"Unknown trigger type '{trigger_type}'. Choose one of: {', '.join(trigger_types.names())}."
        ]
    else:
        cleaned["trigger_type"] = trigger_type
        try:
            cleaned["trigger_config"] = trigger.validate_config(
                trigger_config if trigger_config is not None else {}, entity=entity
            )
        except ConfigInvalid as exc:
            errors.update(exc.prefixed("trigger_config"))
    try:
        cleaned["conditions"] = conditions_module.validate_conditions(conditions, entity=entity)
    except ConfigInvalid as exc:
        errors.update(exc.prefixed("conditions"))
    if trigger is not None and "conditions" in cleaned:
        for key, messages in trigger.check_rule(conditions=cleaned["conditions"]).items():
            errors.setdefault(key, []).extend(messages)
    try:
        cleaned["steps"] = validate_steps(steps, entity=entity)
        cleaned["action_type"] = cleaned["steps"][0]["type"]
        cleaned["action_config"] = cleaned["steps"][0]["config"]
    except RuleInvalid as exc:
        errors.update(exc.errors)
    if errors:
        raise RuleInvalid(errors=as_single_action(errors) if single_action else errors)
    return cleaned
