"""Rule versions for people (the admin's history page): each version's content as readable lines (steps and
their options by label, conditions as sentences, entity by name) and diffs between two versions (steps
compared step by step, everything else line by line)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from .admin_display import duration_text
from .admin_editor import OPERATOR_LABELS, editor_schema
from .versions import SNAPSHOT_FIELDS

FIELD_LABELS = {
    "name": "Name",
    "description": "Description",
    "entity_id": "Entity",
    "trigger_type": "Trigger",
    "trigger_config": "Trigger options",
    "conditions": "Conditions",
    "steps": "Steps",
    "is_active": "Active",
    "max_runs_per_minute": "Max runs per minute",
    "max_runs_per_hour": "Max runs per hour",
}
INDENT = "    "


@dataclass
class FieldDiff:
    field: str
    label: str
    # (kind, text): kind is "same", "removed" or "added"
    lines: list[tuple[str, str]] = field(default_factory=list)


class Vocabulary:
    """Labels of types, options, fields and entities, read once per page."""

    def __init__(self, entity_names: dict[str, str] | None = None, entity_fields: list[dict] | None = None):
        schema = editor_schema()
        self.types = {kind["name"]: kind["label"] for kind in [*schema["triggers"], *schema["steps"]]}
        self.options = {
            (kind["name"], option["name"]): option["label"]
            for kind in [*schema["triggers"], *schema["steps"]]
            for option in kind["fields"]
        }
        self.entity_names = entity_names or {}
        self.field_labels = {spec["name"]: spec.get("label") or spec["name"] for spec in entity_fields or []}

    def type_label(self, name: Any) -> str:
        return self.types.get(name, str(name))

    def option_label(self, type_name: str, key: str) -> str:
        return self.options.get((type_name, key), key)


def value_text(value: Any, key: str = "") -> str:
    if (key == "seconds" or key.endswith("_seconds")) and isinstance(value, int) and not isinstance(value, bool):
        return duration_text(value) + (" before" if value < 0 else "")
    if value is None:
        return "—"
    if value in ({}, []):
        return "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _option_lines(type_name: str, config: Any, vocabulary: Vocabulary, indent: str) -> list[str]:
    if not isinstance(config, dict):
        return [f"{indent}{value_text(config)}"]
    lines = []
    for key, value in config.items():
        text = value_text(value, key).splitlines() or [""]
        lines.append(f"{indent}{vocabulary.option_label(type_name, key)}: {text[0]}")
        lines.extend(f"{indent}{INDENT}{more}" for more in text[1:])
    return lines


def condition_lines(group: Any, vocabulary: Vocabulary, indent: str = "") -> list[str]:
    """``{"match": "all", "rules": [...]}`` as "All of:" and one sentence a condition, groups indented."""
    if not group or not isinstance(group, dict) or not group.get("rules"):
        return [f"{indent}(none: every record that triggers the rule)"] if not indent else []
    lines = [f"{indent}{'Any' if group.get('match') == 'any' else 'All'} of:"]
    for item in group.get("rules") or []:
        if isinstance(item, dict) and "rules" in item:
            lines.extend(condition_lines(item, vocabulary, indent + INDENT))
            continue
        if not isinstance(item, dict):
            lines.append(f"{indent}{INDENT}{value_text(item)}")
            continue
        field_label = vocabulary.field_labels.get(item.get("field"), str(item.get("field")))
        op = OPERATOR_LABELS.get(item.get("op"), str(item.get("op")))
        sentence = f"{field_label} {op}"
        if "value" in item:
            value = item["value"]
            shown = ", ".join(value_text(v) for v in value) if isinstance(value, list) else value_text(value)
            sentence += f" “{shown}”" if isinstance(value, str | list) else f" {shown}"
        lines.append(f"{indent}{INDENT}{sentence}")
    return lines


def _step_parts(step: Any, vocabulary: Vocabulary) -> tuple[str, list[str]]:
    """A step's type label and its option lines."""
    if not isinstance(step, dict):
        return value_text(step), []
    return vocabulary.type_label(step.get("type")), _option_lines(
        str(step.get("type")), step.get("config") or {}, vocabulary, INDENT
    )


def step_lines(steps: Any, vocabulary: Vocabulary) -> list[str]:
    lines = []
    for index, step in enumerate(steps or []):
        label, options = _step_parts(step, vocabulary)
        lines.append(f"Step {index + 1} · {label}")
        lines.extend(options)
    return lines


def _line_diff(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.extend(("same", line) for line in a[i1:i2])
            continue
        out.extend(("removed", line) for line in a[i1:i2])
        out.extend(("added", line) for line in b[j1:j2])
    return out


def step_diff(before: Any, after: Any, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    """Steps compared step by step: steps are paired by type in order (a step kept, moved or edited reads
    as one step, with its number before when it moved), then their options line by line; a step only on
    one side is removed or added whole."""
    a = [_step_parts(step, vocabulary) for step in (before or [])]
    b = [_step_parts(step, vocabulary) for step in (after or [])]
    out: list[tuple[str, str]] = []
    pairs = difflib.SequenceMatcher(a=[label for label, _ in a], b=[label for label, _ in b], autojunk=False)
    for tag, i1, i2, j1, j2 in pairs.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                moved = f" (was step {i + 1})" if i != j else ""
                out.append(("same", f"Step {j + 1} · {b[j][0]}{moved}"))
                out.extend(_line_diff(a[i][1], b[j][1]))
            continue
        for i in range(i1, i2):
            out.append(("removed", f"Step {i + 1} · {a[i][0]}"))
            out.extend(("removed", line) for line in a[i][1])
        for j in range(j1, j2):
            out.append(("added", f"Step {j + 1} · {b[j][0]}"))
            out.extend(("added", line) for line in b[j][1])
    return out


def snapshot_lines(snapshot: dict[str, Any], vocabulary: Vocabulary) -> dict[str, list[str]]:
    """Each versioned field of a snapshot as readable lines."""
    out: dict[str, list[str]] = {}
    for name in SNAPSHOT_FIELDS:
        value = snapshot.get(name)
        if name == "entity_id":
            out[name] = [vocabulary.entity_names.get(str(value), f"an entity no longer there ({value})")]
        elif name == "trigger_type":
            out[name] = [vocabulary.type_label(value)]
        elif name == "trigger_config":
            out[name] = _option_lines(str(snapshot.get("trigger_type")), value or {}, vocabulary, "") or ["(none)"]
        elif name == "conditions":
            out[name] = condition_lines(value, vocabulary)
        elif name == "steps":
            out[name] = step_lines(value, vocabulary)
        elif name.startswith("max_runs"):
            out[name] = [value_text(value) if value is not None else "no limit"]
        elif name == "description":
            out[name] = (value or "").splitlines() or ["(empty)"]
        else:
            out[name] = [value_text(value)]
    return out


def diff_snapshots(before: dict[str, Any] | None, after: dict[str, Any], vocabulary: Vocabulary) -> list[FieldDiff]:
    """The fields that differ from ``before`` to ``after`` (all of ``after`` when there is no before), as
    line diffs: unchanged lines kept for context, removed and added lines marked."""
    new = snapshot_lines(after, vocabulary)
    old = snapshot_lines(before, vocabulary) if before is not None else {}
    diffs = []
    for name in SNAPSHOT_FIELDS:
        if before is not None and (before.get(name) == after.get(name)):
            continue
        result = FieldDiff(field=name, label=FIELD_LABELS.get(name, name))
        if name == "steps":
            result.lines = step_diff((before or {}).get("steps"), after.get("steps"), vocabulary)
        else:
            result.lines = _line_diff(old.get(name, []), new[name])
        diffs.append(result)
    return diffs
