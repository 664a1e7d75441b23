"""Request parsers with the limits Django applies to forms but DRF does not apply to JSON bodies.

A body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused (413) before it is read; JSON nested too
deep to parse and strings holding NUL characters (which PostgreSQL cannot store) are malformed input
(400), never a 500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class BodySizeLimitMixin:
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            meta = request.META
            try:
                length = int(meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH") or 0)
            except (TypeError, ValueError):
                length = 0
            if length > limit:
                raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        return super().parse(stream, media_type, parser_context)


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(BodySizeLimitMixin, parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if _contains_nul(data):
            raise ParseError("JSON parse error - strings may not contain NUL (\\u0000) characters.")
        return data


class FormParser(BodySizeLimitMixin, parsers.FormParser):
    pass


class MultiPartParser(BodySizeLimitMixin, parsers.MultiPartParser):
    pass
