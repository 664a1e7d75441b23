"""The API's shared mechanics, written once: auth, the seed's envelope, errors, pagination, roles.

Every response is ``{"success": true, "message": ..., "data": {...}}``; every error is
``{"success": false, "message": ..., "errors": {field: [messages]}}``. Views return the inner ``data``
and may set ``response.message``; the renderer wraps it, the exception handler shapes errors.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict, DomainError, InvalidInput, NotAllowed, NotFound, flatten_errors, unknown_key_message
from .renderers import error_body
from .text import counted

# --------------------------------------------------------------------------- envelope


def ok(data: Any, message: str, status_code: int = status.HTTP_200_OK) -> Response:
    """A successful response; the renderer puts ``data`` under the envelope's ``data`` key."""
    response = Response(data, status=status_code)
    response.message = message
    return response


class HTTPConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable right now; retry in a few seconds."
    default_code = "database_unavailable"


def api_exception(exc: DomainError) -> exceptions.APIException:
    """The HTTP form of a domain error (written once here; services know nothing of HTTP): invalid input
    400, not found 404, conflict 409, not allowed 403. The envelope's message is the error's message."""
    if isinstance(exc, InvalidInput):
        return exceptions.ValidationError(exc.errors or {"non_field_errors": [exc.message]})
    if isinstance(exc, NotFound):
        api_exc = exceptions.NotFound(exc.errors or exc.message)
    elif isinstance(exc, Conflict):
        api_exc = HTTPConflict(exc.errors or exc.message)
    elif isinstance(exc, NotAllowed):
        api_exc = exceptions.PermissionDenied(exc.errors or exc.message)
    else:
        api_exc = exceptions.ValidationError(exc.errors or {"non_field_errors": [exc.message]})
    api_exc.envelope_message = exc.message
    return api_exc


def envelope_exception_handler(exc, context):
    """DRF exception handler: every error leaves in the error envelope with its status code."""
    if isinstance(exc, DomainError):
        exc = api_exception(exc)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        # A model-level check that escaped a service: still the client's input, not a server error.
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, OperationalError | InterfaceError):
        # The database is unreachable (restart, failover): a clean, retryable 503, not a 500.
        exc = DatabaseUnavailable()
    elif isinstance(exc, IntegrityError):
        # A race lost against a unique constraint (e.g. two concurrent adds of the same member).
        exc = HTTPConflict("The request conflicts with existing data; reload and try again.")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) and "No " not in str(exc) else "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = "5"
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail
        flat = flatten_errors(errors)
        first = next(iter(flat.items()), None)
        message = "Validation failed"
        if first:
            field, messages = first
            message = f"Validation failed: {messages[0]}" if field == "non_field_errors" else message
        body = {"success": False, "message": message, "errors": flat}
    elif isinstance(exc, exceptions.ParseError):
        body = error_body(f"Malformed request body: {exc.detail}")
    else:
        detail = exc.detail if hasattr(exc, "detail") else str(exc)
        if getattr(exc, "envelope_message", None):
            message = exc.envelope_message
        elif isinstance(detail, dict | list):
            first = next(iter(flatten_errors(detail).values()), None)
            message = first[0] if first else "Request failed"
        else:
            message = str(detail)
        body = error_body(message, detail if isinstance(detail, dict | list) else None)
    response.data = body
    response.enveloped = True
    return response


def json_error_view(status_code: int, message: str):
    def view(request, exception=None):
        return JsonResponse({"success": False, "message": message, "errors": {}}, status=status_code)

    return view


# --------------------------------------------------------------------------- input


class StrictInputMixin:
    """A serializer that refuses keys it does not know: a typo (``"is_activ": false``) is a 400 naming
    the key, not a silently ignored field. Every write endpoint's input serializer has it (through
    ``StrictSerializer`` / ``StrictModelSerializer``). Read-only fields are known keys: a client may send
    back what it read."""

    # The browsable API's HTML forms post Django's CSRF token along with the fields.
    ignored_keys = frozenset({"csrfmiddlewaretoken"})

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            known = self.fields  # type: ignore[attr-defined]
            unknown = {
                str(key): [unknown_key_message(str(key), known)]
                for key in data
                if key not in known and key not in self.ignored_keys
            }
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    """Input without a model; unknown keys refused."""


class FieldsBuiltOnce:
    """``ModelSerializer`` introspects its model for every instance (field info, one field built per column,
    uniqueness checks): ~8 % of an API write's CPU. What it builds depends on the class alone (``Meta``,
    declared fields), so it is built once per class and each instance gets a deep copy, as DRF does with
    declared fields; a subclass may still adjust its copy in its own ``get_fields``."""

    def get_fields(self):
        cls = type(self)
        built = cls.__dict__.get("_fields_built_once")
        if built is None:
            built = super().get_fields()
            cls._fields_built_once = built
        return copy.deepcopy(built)


class StrictModelSerializer(StrictInputMixin, FieldsBuiltOnce, serializers.ModelSerializer):
    """Model input; unknown keys refused."""


class NoInput(StrictSerializer):
    """The body of an action that takes none: any key is unknown."""


def validated_input(serializer_class, data, **kwargs) -> dict:
    """Validate a request body with ``serializer_class`` (400 with field errors) and return it."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --------------------------------------------------------------------------- pagination


class EnvelopePagination(PageNumberPagination):
    """``data = {"<plural>": [...], "total": N, "page": p, "page_size": s, "pages": k}``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    plural = "results"
    singular = "result"

    def __init__(self, plural: str | None = None):
        if plural:
            self.plural = plural

    def paginate_queryset(self, queryset, request, view=None):
        if view is not None:
            self.plural = getattr(view, "envelope_plural", self.plural)
            self.singular = getattr(view, "envelope_singular", self.singular)
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as exc:
            raise exceptions.NotFound("Invalid page: past the last page.") from exc

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise exceptions.ValidationError({"page_size": ["Must be a whole number."]}) from None
        if size < 1:
            raise exceptions.ValidationError({"page_size": ["Must be at least 1."]})
        return min(size, self.max_page_size)

    def get_paginated_response(self, data):
        total = self.page.paginator.count
        size = self.page.paginator.per_page
        return ok(
            {
                self.plural: data,
                "total": total,
                "page": self.page.number,
                "page_size": size,
                "pages": max(1, math.ceil(total / size)) if size else 1,
            },
            f"Retrieved {counted(total, self.singular, self.plural)}",
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.plural, "total"],
            "properties": {
                self.plural: schema,
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "pages": {"type": "integer"},
            },
        }


# --------------------------------------------------------------------------- schema


def _envelope(schema: dict | None) -> dict:
    return {
        "type": "object",
        "required": ["success", "message", "data"],
        "properties": {
            "success": {"type": "boolean", "enum": [True]},
            "message": {"type": "string"},
            "data": schema or {"type": "object"},
        },
    }


class EnvelopeAutoSchema(AutoSchema):
    """Documents responses as clients receive them: inside the envelope, keyed by singular/plural."""

    def _get_paginator(self):
        pagination_class = getattr(self.view, "pagination_class", None)
        if pagination_class and issubclass(pagination_class, EnvelopePagination):
            return pagination_class(plural=getattr(self.view, "envelope_plural", None))
        return super()._get_paginator()

    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        if self.method == "DELETE" and set(bodies) == {"204"} and isinstance(self.view, EnvelopeModelViewSet):
            # EnvelopeModelViewSet.destroy answers 200 with the envelope (data = {}), not 204.
            return {"200": {"description": "Deleted", "content": {"application/json": {"schema": _envelope(None)}}}}
        return bodies

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if not ("200" <= str(status_code) < "300"):
            return response
        action = getattr(self.view, "action", None)
        singular = getattr(self.view, "envelope_singular", None)
        content = response.get("content")
        if not content:
            response["content"] = {"application/json": {"schema": _envelope({"type": "object"})}}
            return response
        for media in content.values():
            schema = media.get("schema")
            if singular and action in ("retrieve", "create", "update", "partial_update"):
                schema = {"type": "object", "required": [singular], "properties": {singular: schema}}
            media["schema"] = _envelope(schema)
        return response


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    """Documents ``config.authentication.TokenOrBearerAuthentication`` (both header schemes)."""

    target_class = "config.authentication.TokenOrBearerAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Send "Token <key>" or "Bearer <key>" (the key comes from /api/v1/auth/token/).',
        }


ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "message", "errors"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "message": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: errors per field",
    "401": "Not authenticated",
    "403": "Authenticated but the role does not allow this",
    "404": "Not found (also: another workspace's object)",
    "405": "Method not allowed",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "429": "Throttled",
    "503": "Database unavailable (retry after the Retry-After seconds)",
}


def envelope_schema_hook(result, generator, request, public):
    """Adds the error envelope component and the documented error statuses to every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_DESCRIPTIONS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
                    },
                )
    return result


# --------------------------------------------------------------------------- viewsets

from rest_framework import viewsets  # noqa: E402


class EnvelopeModelViewSet(viewsets.ModelViewSet):
    """CRUD with the seed's shapes: ``{"<plural>": [...], "total": N}`` and ``{"<singular>": {...}}``.

    PUT is partial when ``put_is_partial`` (the seed's PUT takes any subset of fields)."""

    envelope_singular = "result"
    envelope_plural = "results"
    pagination_class = EnvelopePagination
    put_is_partial = False

    @property
    def label(self) -> str:
        return self.envelope_singular.replace("_", " ").capitalize()

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        data = self.get_serializer(queryset, many=True).data
        return ok(
            {self.envelope_plural: data, "total": len(data)},
            f"Retrieved {counted(len(data), self.envelope_singular, self.envelope_plural)}",
        )

    def retrieve(self, request, *args, **kwargs):
        return ok({self.envelope_singular: self.get_serializer(self.get_object()).data}, f"{self.label} retrieved")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return ok(
            {self.envelope_singular: self.get_serializer(serializer.instance).data},
            f"{self.label} created successfully",
            status.HTTP_201_CREATED,
        )

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False) or self.put_is_partial
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return ok(
            {self.envelope_singular: self.get_serializer(serializer.instance).data},
            f"{self.label} updated successfully",
        )

    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        self.perform_destroy(instance)
        return ok({}, f"{self.label} deleted successfully")
