"""The seed's envelope as a renderer (kept apart from config.api: DRF imports renderers early)."""

from typing import Any

from rest_framework.renderers import JSONRenderer

from .errors import flatten_errors


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


def error_body(message: str, errors: Any = None) -> dict[str, Any]:
    if isinstance(errors, dict) and set(errors) == {"detail"}:
        errors = None
    return {"success": False, "message": message, "errors": flatten_errors(errors) if errors else {}}
