"""The seed's automation endpoints under ``/workspaces/{workspace_id}/automations/``: thin views over
``automations.services`` (every rule is validated there, through the type registries)."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action

from config.api import ERROR_SCHEMA, NoInput, ok, validated_input
from config.text import counted
from records.exceptions import RecordNotFound
from records.selectors import record_in_workspace
from workspaces.models import Entity, Role
from workspaces.permissions import WorkspaceScopedViewSet
from workspaces.selectors import entity_in_workspace

from .. import selectors, services, webhooks
from ..models import AutomationRule
from . import schema  # noqa: F401  (registers the OpenAPI extension for rules)
from .serializers import (
    AutomationLogSerializer,
    AutomationRuleSerializer,
    BulkReplaySerializer,
    LogQuerySerializer,
    ReplaySerializer,
    RuleListQuerySerializer,
    RuleTestSerializer,
    RuleVersionSerializer,
)

UUID_RE = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

CONFLICT = OpenApiResponse(response=ERROR_SCHEMA, description="The run cannot be retried in its current state")

TestResult = inline_serializer(
    "AutomationTestResult",
    {
        "test_result": serializers.JSONField(
            help_text="success, dry_run, action_type, trigger_matches, conditions_match, and either result "
            "(real run: log_id, duration_ms, error) or preview (dry run: rendered email, request, field "
            "change or task)"
        ),
        "automation": AutomationRuleSerializer(),
        "record_id": serializers.UUIDField(),
    },
)
LogList = inline_serializer(
    "AutomationLogList",
    {
        "logs": AutomationLogSerializer(many=True),
        "total": serializers.IntegerField(help_text="Runs matching the filters (the list holds at most limit)."),
        "limit": serializers.IntegerField(),
        "page_size": serializers.IntegerField(help_text="Same as limit."),
        "page": serializers.IntegerField(),
        "pages": serializers.IntegerField(),
    },
)
OneLog = inline_serializer("AutomationLogResult", {"log": AutomationLogSerializer()})
Retried = inline_serializer("AutomationReplayResult", {"retried": serializers.IntegerField()})
VersionList = inline_serializer(
    "AutomationVersionList",
    {"versions": RuleVersionSerializer(many=True), "total": serializers.IntegerField()},
)
OneRule = inline_serializer("AutomationResult", {"automation": AutomationRuleSerializer()})
Empty = inline_serializer("Empty", {})


def _query(serializer_class, request):
    # A plain dict, not the QueryDict: a missing boolean must stay missing, not become False.
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema(tags=["automations"])
class AutomationRuleViewSet(WorkspaceScopedViewSet):
    """Automation rules of a workspace: when a record of ``entity_id`` is created, changed or deleted
    (``trigger_type`` + ``trigger_config``) and ``conditions`` match, run one action (``action_type`` +
    ``action_config``). Any member reads; owners and admins write, test and retry. PUT and PATCH are both
    partial: fields not given keep their value."""

    serializer_class = AutomationRuleSerializer
    envelope_singular = "automation"
    envelope_plural = "automations"
    write_role = Role.ADMIN
    put_is_partial = True
    lookup_value_regex = UUID_RE

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AutomationRule.objects.none()
        return selectors.rules_of_workspace(self.workspace)

    def get_object(self):
        try:
            return super().get_object()
        except (DjangoValidationError, ValueError):
            raise exceptions.NotFound("Automation not found.") from None

    def get_serializer_class(self):
        return {
            "test": RuleTestSerializer,
            "logs": AutomationLogSerializer,
            "log": AutomationLogSerializer,
            "retry_log": ReplaySerializer,
            "retry_logs": BulkReplaySerializer,
            "versions": RuleVersionSerializer,
            "restore_version": NoInput,
            "rotate_secret": NoInput,
        }.get(self.action, AutomationRuleSerializer)

    def _rule_data(self, rule: AutomationRule) -> dict:
        return AutomationRuleSerializer(rule, context=self.get_serializer_context()).data

    def _entity(self, entity_id) -> Entity:
        entity = entity_in_workspace(self.workspace, entity_id)
        if entity is None:
            raise exceptions.ValidationError({"entity_id": ["Entity not found in this workspace."]})
        return entity

    # ------------------------------------------------------------------ CRUD

    @extend_schema(parameters=[RuleListQuerySerializer])
    def list(self, request, *args, **kwargs):
        """The workspace's rules (``data.automations`` + ``total``), newest first; filter by ``entity_id``,
        ``is_active``, ``trigger_type``, ``action_type`` or a ``search`` in the name."""
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        params = _query(RuleListQuerySerializer, self.request)
        return selectors.filter_rules(queryset, **params)

    def perform_create(self, serializer):
        fields = dict(serializer.validated_data)
        fields["entity"] = self._entity(fields.pop("entity_id"))
        serializer.instance = services.rule_create(workspace=self.workspace, actor=self.request.user, **fields)

    @extend_schema(request=AutomationRuleSerializer(partial=True))
    def update(self, request, *args, **kwargs):
        """Partial, like PATCH: fields not given keep their value; the rule is revalidated as a whole."""
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer):
        changes = dict(serializer.validated_data)
        if "entity_id" in changes:
            changes["entity"] = self._entity(changes.pop("entity_id"))
        serializer.instance = services.rule_update(rule=serializer.instance, actor=self.request.user, **changes)

    @extend_schema(responses={200: Empty})
    def destroy(self, request, *args, **kwargs):
        """Delete the rule and its run log."""
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance):
        services.rule_delete(rule=instance, actor=self.request.user)

    # ------------------------------------------------------------------ test, logs, retry, secret

    @extend_schema(request=RuleTestSerializer, responses={200: TestResult})
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request, *args, **kwargs):
        """Run the action now against ``record_id`` (logged with ``is_test``), or with ``dry_run`` return
        what would happen (rendered email, request, field change or task, and whether trigger and
        conditions match) without sending, writing or logging anything."""
        rule = self.get_object()
        params = RuleTestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            record = record_in_workspace(workspace=self.workspace, record_id=params.validated_data["record_id"])
        except RecordNotFound:
            raise exceptions.ValidationError({"record_id": ["Record not found in this workspace."]}) from None
        result = services.rule_test_run(
            rule=rule, record=record, dry_run=params.validated_data["dry_run"], actor=request.user
        )
        rule.refresh_from_db()
        return ok(
            {"test_result": result, "automation": self._rule_data(rule), "record_id": str(record.pk)},
            "Automation dry run completed" if result.get("dry_run") else "Automation test completed",
        )

    @extend_schema(parameters=[LogQuerySerializer], responses={200: LogList})
    @action(detail=True, methods=["get"], url_path="logs")
    def logs(self, request, *args, **kwargs):
        """The rule's runs, newest first, a page at a time: ``limit`` (or ``page_size``; default 50, max
        500) runs of page ``page`` (default 1); ``total`` counts them all. Filters: ``status``, ``since``
        / ``until`` (dates or date-times, on the run's creation time), ``is_test``."""
        rule = self.get_object()
        params = _query(LogQuerySerializer, request)
        limit, page = params.pop("limit"), params.pop("page")
        runs = selectors.rule_runs(rule, **params)
        total = runs.count()
        pages = max(1, math.ceil(total / limit))
        if page > pages:
            raise exceptions.NotFound("Invalid page: past the last page.")
        logs = AutomationLogSerializer.for_logs(runs[(page - 1) * limit : page * limit], many=True).data
        return ok(
            {"logs": logs, "total": total, "limit": limit, "page_size": limit, "page": page, "pages": pages},
            f"Retrieved {counted(len(logs), 'log')}",
        )

    @extend_schema(
        operation_id="workspaces_automations_log_retrieve",
        parameters=[OpenApiParameter("log_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: OneLog},
    )
    @action(detail=True, methods=["get"], url_path=rf"logs/(?P<log_id>{UUID_RE})")
    def log(self, request, *args, log_id=None, **kwargs):
        """One run of the rule (``data.log``, the shape of the list's items); another rule's run is 404."""
        log = selectors.run_of_rule(self.get_object(), log_id)
        return ok({"log": AutomationLogSerializer.for_logs(log).data}, "Log retrieved")

    @extend_schema(
        request=ReplaySerializer,
        parameters=[OpenApiParameter("log_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={202: OneLog, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path=rf"logs/(?P<log_id>{UUID_RE})/retry")
    def retry_log(self, request, *args, log_id=None, **kwargs):
        """Run a failed (or skipped) run again from the step that failed (the steps before are not run
        again), or a finished run from ``from_step``. Webhook-ids stay the same; the replay is logged with
        who asked for it."""
        rule = self.get_object()
        params = validated_input(ReplaySerializer, request.data)
        log = selectors.run_of_rule(rule, log_id)
        log.automation = rule
        log = services.log_retry(log=log, from_step=params.get("from_step"), actor=request.user)
        return ok({"log": AutomationLogSerializer.for_logs(log).data}, "Run queued for retry", status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="workspaces_automations_logs_retry_bulk",
        request=BulkReplaySerializer,
        responses={202: Retried, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="logs/retry")
    def retry_logs(self, request, *args, **kwargs):
        """Replay up to 5,000 of the rule's runs with ``status`` (error or skipped), created between
        ``since`` and ``until`` when given, each from the step that failed (``data.retried``: how many)."""
        rule = self.get_object()
        params = validated_input(BulkReplaySerializer, request.data)
        retried = services.logs_retry(rule=rule, actor=request.user, **params)
        return ok({"retried": retried}, f"Queued {counted(retried, 'run')} for retry", status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: VersionList})
    @action(detail=True, methods=["get"], url_path="versions")
    def versions(self, request, *args, **kwargs):
        """Every version of the rule, newest first: who made it, when, which fields changed, the rule."""
        versions = selectors.rule_versions(self.get_object())
        data = RuleVersionSerializer(versions, many=True).data
        return ok({"versions": data, "total": len(data)}, f"Retrieved {counted(len(data), 'version')}")

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: OneRule},
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<version>[0-9]+)/restore")
    def restore_version(self, request, *args, version=None, **kwargs):
        """Make a new version with the content of version ``n`` (runs already made or waiting keep theirs)."""
        rule = self.get_object()
        validated_input(NoInput, request.data)
        rule = services.rule_restore(rule=rule, version=int(version), actor=request.user)
        return ok({"automation": self._rule_data(rule)}, f"Version {version} restored as version {rule.version}")

    @extend_schema(request=None, responses={200: OneRule})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, *args, **kwargs):
        """Give the rule a new webhook signing secret; for 24 hours deliveries carry a second signature
        made with the old one, so receivers can switch without dropping messages."""
        rule = self.get_object()
        validated_input(NoInput, request.data)
        rule = webhooks.rule_rotate_secret(rule)
        return ok({"automation": self._rule_data(rule)}, "Signing secret rotated")
