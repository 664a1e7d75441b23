"""The seed's envelope as a renderer (kept apart from config.api: DRF imports renderers early)."""

from typing import Any

from rest_framework.renderers import JSONRenderer


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps successful payloads in the seed's envelope; errors arrive already shaped."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and not getattr(response, "enveloped", False):
            if response.status_code < 400:
                data = {
                    "success": True,
                    "message": getattr(response, "message", None) or "OK",
                    "data": data if data is not None else {},
                }
            else:
                data = error_body(str(getattr(response, "message", "") or "Request failed"), data)
        return super().render(data, accepted_media_type, renderer_context)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF error detail (nested dicts/lists) -> ``{"field.sub.0": ["message", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item in ({}, []):
                    continue
                name = f"{prefix}.{index}" if prefix else str(index)
                for k, v in flatten_errors(item, name).items():
                    out.setdefault(k, []).extend(v)
    elif detail is not None:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def error_body(message: str, errors: Any = None) -> dict[str, Any]:
    if isinstance(errors, dict) and set(errors) == {"detail"}:
        errors = None
    return {"success": False, "message": message, "errors": flatten_errors(errors) if errors else {}}
