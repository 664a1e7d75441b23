"""The rule editor's small JSON views (staff only, through the admin site): the type schema, a workspace's
entities, an entity's schema and records, the next times of a cron, and a dry run of the rule as it stands
in the editor (saved or not) on a chosen record. Nothing here writes."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from records.selectors import records_of_entity, search_records
from workspaces.field_types import record_label
from workspaces.models import Entity, Workspace
from workspaces.selectors import entities_of, entity_in_workspace, members_of

from . import schedules, services
from .admin_display import moment_text, zone_of
from .admin_editor import editor_schema, entity_schema
from .exceptions import RuleInvalid, TestRecordInvalid
from .models import AutomationRule

PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
EDITOR_PARTS = ("trigger_type", "trigger_config", "conditions", "steps")


def record_choice(record, label: str) -> dict:
    """A record as the picker lists it: its label, then a few other values and the start of its id."""
    values = [str(v) for v in (record.data or {}).values() if v not in (None, "", []) and str(v) != label][:3]
    return {"id": str(record.pk), "label": label, "detail": " · ".join([*values, f"id {str(record.pk)[:8]}…"])}


def workspace_by_id(workspace_id) -> Workspace | None:
    try:
        return Workspace.objects.filter(pk=workspace_id).first() if workspace_id else None
    except (DjangoValidationError, ValueError):
        return None


def entity_of(workspace_id, entity_id) -> Entity | None:
    """The entity, only when it belongs to the workspace (the editor's pickers never cross workspaces)."""
    workspace = workspace_by_id(workspace_id)
    return entity_in_workspace(workspace, entity_id) if workspace is not None else None


class RuleEditorViews:
    """Mixed into the rule's ModelAdmin: its URLs and views for the editor's JavaScript."""

    def editor_urls(self) -> list:
        def view(method, name: str):
            return self.admin_site.admin_view(method), f"automations_automationrule_editor_{name}"

        def get(route: str, method, name: str):
            wrapped, full_name = view(require_GET(method), name)
            return path(route, wrapped, name=full_name)

        wrapped, full_name = view(require_POST(self.editor_preview_view), "preview")
        return [
            get("editor/schema/", self.editor_schema_view, "schema"),
            get("editor/entities/", self.editor_entities_view, "entities"),
            get("editor/entities/<uuid:entity_id>/", self.editor_entity_view, "entity"),
            get("editor/entities/<uuid:entity_id>/records/", self.editor_records_view, "records"),
            get("editor/occurrences/", self.editor_occurrences_view, "occurrences"),
            path("editor/preview/", wrapped, name=full_name),
        ]

    def _editor_allowed(self, request) -> None:
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied

    def editor_page_data(self, *, rule: AutomationRule | None, workspace, entity, errors: dict) -> dict[str, Any]:
        """What the change form's editor starts from (embedded in the page as JSON)."""

        def url(name: str, *args) -> str:
            return reverse(f"admin:automations_automationrule_editor_{name}", args=args)

        return {
            "schema": editor_schema(),
            "rule_id": str(rule.pk) if rule is not None and rule.pk else None,
            "workspace_id": str(workspace.pk) if workspace is not None else None,
            "entity": self._entity_data(entity) if entity is not None else None,
            "errors": errors,
            "urls": {
                "entities": url("entities"),
                "entity": url("entity", PLACEHOLDER_ID),
                "records": url("records", PLACEHOLDER_ID),
                "occurrences": url("occurrences"),
                "preview": url("preview"),
            },
            "placeholder_id": PLACEHOLDER_ID,
        }

    @staticmethod
    def _entity_data(entity: Entity) -> dict[str, Any]:
        members = [membership.user.get_username() for membership in members_of(entity.workspace_id)]
        return entity_schema(entity, members=members)

    @staticmethod
    def _json_error(errors: dict[str, list[str]], status: int = 400) -> JsonResponse:
        return JsonResponse({"errors": errors}, status=status)

    # ------------------------------------------------------------------ views

    def editor_schema_view(self, request):
        """Every registered trigger and step type with its fields (the same data the page embeds)."""
        self._editor_allowed(request)
        return JsonResponse(editor_schema())

    def editor_entities_view(self, request):
        """The entities of one workspace (``?workspace=<id>``), for the entity select."""
        self._editor_allowed(request)
        workspace = workspace_by_id(request.GET.get("workspace"))
        if workspace is None:
            raise Http404("No such workspace.")
        entities = [{"id": str(entity.pk), "name": entity.name} for entity in entities_of(workspace)]
        return JsonResponse({"entities": entities})

    def editor_entity_view(self, request, entity_id):
        """An entity's schema (fields, operators, status values, members) for the dropdowns; only with the
        workspace it belongs to (``?workspace=<id>``)."""
        self._editor_allowed(request)
        entity = entity_of(request.GET.get("workspace"), entity_id)
        if entity is None:
            raise Http404("No such entity in this workspace.")
        return JsonResponse(self._entity_data(entity))

    def editor_records_view(self, request, entity_id):
        """The record picker's matches among the entity's records (``?workspace=<id>&q=<text>``)."""
        self._editor_allowed(request)
        entity = entity_of(request.GET.get("workspace"), entity_id)
        if entity is None:
            raise Http404("No such entity in this workspace.")
        found = search_records(entity, request.GET.get("q", ""))
        return JsonResponse({"results": [record_choice(record, label) for record, label in found]})

    def editor_occurrences_view(self, request):
        """The next five times of a cron in a time zone (``?cron=…&timezone=…``), as people read them."""
        self._editor_allowed(request)
        cron, zone_name = request.GET.get("cron", ""), request.GET.get("timezone") or "UTC"
        try:
            config = {"cron": schedules.check_cron(cron), "timezone": schedules.check_timezone(zone_name)}
        except ValueError as exc:
            return self._json_error({"cron": [str(exc)]})
        tz = zone_of(zone_name)
        times = schedules.occurrences_after(config, timezone.now(), 5)
        return JsonResponse(
            {"occurrences": [{"at": moment.isoformat(), "text": moment_text(moment, tz)} for moment in times]}
        )

    def editor_preview_view(self, request):
        """A dry run of the rule as the editor holds it (``rule_test_run(dry_run=True)``: nothing is sent,
        written or logged) on a record of its entity. Body: ``{"workspace", "entity", "rule"?, "record",
        "trigger_type", "trigger_config", "conditions", "steps"}``; invalid parts answer 400 with the errors
        keyed as the form's (``steps.1.config.url``)."""
        self._editor_allowed(request)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self._json_error({"non_field_errors": ["The request is not JSON."]})
        if not isinstance(body, dict):
            return self._json_error({"non_field_errors": ["The request is not a JSON object."]})
        rule = self.get_object(request, str(body["rule"])) if body.get("rule") else None
        if body.get("rule") and rule is None:
            raise Http404("No such rule.")
        workspace_id = rule.workspace_id if rule is not None else body.get("workspace")
        entity = entity_of(workspace_id, body.get("entity"))
        if entity is None:
            return self._json_error({"entity": ["Choose the rule's workspace and entity first."]})
        try:
            record = records_of_entity(entity.pk).filter(pk=body.get("record")).first()
        except (DjangoValidationError, ValueError):
            record = None
        if record is None:
            return self._json_error({"record": ["Choose a record of this entity to preview on."]})
        try:
            parts = services.validate_rule_parts(
                entity=entity,
                trigger_type=body.get("trigger_type"),
                trigger_config=body.get("trigger_config") or {},
                steps=body.get("steps") if body.get("steps") is not None else [],
                conditions=body.get("conditions") or {},
            )
        except RuleInvalid as exc:
            return self._json_error(exc.errors)
        # An unsaved copy with the editor's content: the dry run reads it, nothing saves it.
        preview_rule = rule if rule is not None else AutomationRule(id=uuid.uuid4(), workspace_id=entity.workspace_id)
        preview_rule.entity = entity
        preview_rule.name = str(body.get("name") or preview_rule.name or "New rule")
        for key, value in parts.items():
            setattr(preview_rule, key, value)
        try:
            outcome = services.rule_test_run(rule=preview_rule, record=record, dry_run=True, actor=request.user)
        except TestRecordInvalid as exc:
            return self._json_error(exc.errors)
        zone_name = (parts.get("trigger_config") or {}).get("timezone")
        outcome["next_occurrences_text"] = [
            moment_text(moment, zone_of(zone_name)) for moment in outcome.get("next_occurrences") or []
        ]
        outcome["record_label"] = record_label(entity.fields, record.data) or str(record.pk)
        return JsonResponse({"outcome": outcome})
