"""Serializer fields shared by action configs."""

from __future__ import annotations

from rest_framework import serializers

from ..exceptions import TemplateRenderError
from ..templating import Mode, validate_template


class TemplateField(serializers.CharField):
    """A user template checked at save time (syntax, forbidden tags, private attributes; a subject may
    not contain line breaks)."""

    def __init__(self, *, mode: Mode = "text", **kwargs):
        self.mode = mode
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value:
            try:
                validate_template(value, mode=self.mode)
            except TemplateRenderError as exc:
                raise serializers.ValidationError(exc.message) from None
        return value
