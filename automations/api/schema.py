"""OpenAPI for rules: one component per trigger and action config shape, chosen by ``trigger_type`` /
``action_type`` (``oneOf`` + ``discriminator``), generated from the registries' config serializers so
the documentation cannot drift from what the API accepts."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent

from ..step_types import step_type, step_type_names
from ..trigger_types import trigger_types


class _StepKinds:
    """The step types (action types + delay) iterated like a registry."""

    def __iter__(self):
        return iter([step_type(name) for name in step_type_names()])


KINDS = (("trigger", trigger_types, "Trigger"), ("action", _StepKinds(), "Action"))
_config_classes: dict[tuple[str, str], type] = {}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _config_class(kind: str, type_obj) -> type:
    """A subclass named after the type, so each type gets its own component (types may share a class)."""
    key = (kind, type_obj.name)
    if key not in _config_classes:
        base = type_obj.config_serializer
        _config_classes[key] = type(f"{_camel(type_obj.name)}{kind.capitalize()}Config", (base,), {"__doc__": None})
    return _config_classes[key]


def _register(auto_schema, name: str, schema: dict) -> dict:
    component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
    auto_schema.registry.register_on_missing(component)
    return component.ref


def _config_ref(auto_schema, kind: str, type_obj, direction: str) -> dict:
    cls = _config_class(kind, type_obj)
    if cls().fields:
        return auto_schema.resolve_serializer(cls(), direction).ref
    else:  # a type without options (spectacular would discard an empty component)
        suffix = "Request" if direction == "request" else ""
        return _register(
            auto_schema,
            f"{cls.__name__}{suffix}",
            {"type": "object", "description": f"{type_obj.label}: no options.", "properties": {}},
        )


class AutomationRuleSerializerExtension(OpenApiSerializerExtension):
    target_class = "automations.api.serializers.AutomationRuleSerializer"

    def map_serializer(self, auto_schema, direction):
        base = auto_schema._map_basic_serializer(self.target, direction)
        partial = direction == "request" and getattr(self.target, "partial", False)
        # Shown to owners and admins only, so never required.
        base["required"] = [name for name in base.get("required", []) if name != "signing_secret"]
        parts = [base]
        for kind, registry, title in KINDS:
            type_key, config_key = f"{kind}_type", f"{kind}_config"
            base["properties"].pop(config_key, None)
            type_schema = base["properties"].pop(type_key, {})
            base["required"] = [name for name in base.get("required", []) if name not in (type_key, config_key)]
            refs = {t.name: _config_ref(auto_schema, kind, t, direction) for t in registry}
            if partial:
                # Any subset of fields: the type and the config may come alone (checked together server-side).
                base["properties"][type_key] = type_schema
                base["properties"][config_key] = {"anyOf": list(refs.values())}
                continue
            variants = {}
            for name, ref in refs.items():
                variant_name = f"{_camel(name)}{title}"
                if direction == "request":
                    variant_name += "Request"
                variants[name] = _register(
                    auto_schema,
                    variant_name,
                    {
                        "type": "object",
                        "required": [type_key] if direction == "request" else [type_key, config_key],
                        "properties": {type_key: {"type": "string", "enum": [name]}, config_key: ref},
                    },
                )
            parts.append(
                {
                    "oneOf": list(variants.values()),
                    "discriminator": {
                        "propertyName": type_key,
                        "mapping": {name: ref["$ref"] for name, ref in variants.items()},
                    },
                }
            )
        base["properties"]["steps"] = self._steps_schema(auto_schema, direction)
        if not base.get("required"):
            base.pop("required", None)
        return base if partial else {"allOf": parts}

    @staticmethod
    def _steps_schema(auto_schema, direction) -> dict:
        """``steps``: an array of step objects, one component per step type (``oneOf`` on ``type``)."""
        variants = {}
        for kind in _StepKinds():
            cls = _config_class("step", kind)
            config_ref = _config_ref(auto_schema, "step", kind, direction) if cls else None
            name = f"{_camel(kind.name)}Step" + ("Request" if direction == "request" else "")
            variants[kind.name] = _register(
                auto_schema,
                name,
                {
                    "type": "object",
                    "required": ["type", "config"] if direction == "response" else ["type"],
                    # a pattern, not an enum: the same one-value choice already names action_type's variant
                    "properties": {
                        "type": {"type": "string", "pattern": f"^{kind.name}$", "example": kind.name},
                        "config": config_ref,
                    },
                },
            )
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "description": "What the rule does, in order (1 to 20 steps); steps[0] is action_type/action_config.",
            "items": {
                "oneOf": list(variants.values()),
                "discriminator": {"propertyName": "type", "mapping": {n: r["$ref"] for n, r in variants.items()}},
            },
        }
