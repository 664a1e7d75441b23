"""Admin for automation rules (validated through the same type registries as the API), their runs
(read-only, retry failed ones) and the event queue (read-only). Each rule has a "Test on a record" page."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.text import counted
from records.models import Record
from records.selectors import records_of_entity
from workspaces.admin import PrettyJSONField, adopt_saved

from . import selectors, services
from .action_types import action_types
from .action_types.base import json_html
from .exceptions import RuleInvalid, RunNotRetryable, TestRecordInvalid
from .models import AutomationEvent, AutomationLog, AutomationRule
from .trigger_types import trigger_types

RECENT_RUNS = 10
CONFIG_FIELDS = ("trigger_config", "action_config", "conditions")


def _type_help(registry) -> str:
    lines = []
    for item in registry:
        fields = ", ".join(item.config_serializer().fields) or "no options"
        lines.append(f"{item.name}: {fields}")
    return "Options per type — " + "; ".join(lines) + "."


class AutomationRuleAdminForm(forms.ModelForm):
    trigger_type = forms.ChoiceField(choices=())
    action_type = forms.ChoiceField(choices=())
    trigger_config = PrettyJSONField(required=False, help_text=_type_help(trigger_types))
    action_config = PrettyJSONField(required=False, help_text=_type_help(action_types))
    conditions = PrettyJSONField(
        required=False,
        help_text='{"match": "all"|"any", "rules": [{"field": "amount", "op": "gte", "value": 1000}, …]}; '
        "empty = always.",
    )

    class Meta:
        model = AutomationRule
        fields = ["workspace", *services.RULE_FIELDS]  # the same editable fields as the API

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read at form time: the registries are the single list of types.
        self.fields["trigger_type"].choices = trigger_types.choices()
        self.fields["action_type"].choices = action_types.choices()
        for name in CONFIG_FIELDS:
            self.fields[name].widget.attrs["rows"] = 10

    def clean(self):
        cleaned = super().clean()
        workspace, entity = cleaned.get("workspace"), cleaned.get("entity")
        if workspace and entity and entity.workspace_id != workspace.pk:
            self.add_error("entity", "This entity belongs to another workspace.")
            return cleaned
        if entity is None or any(name in self.errors for name in CONFIG_FIELDS):
            return cleaned
        try:
            parts = services.validate_rule_parts(
                entity=entity,
                trigger_type=cleaned.get("trigger_type"),
                trigger_config=cleaned.get("trigger_config") or {},
                action_type=cleaned.get("action_type"),
                action_config=cleaned.get("action_config") or {},
                conditions=cleaned.get("conditions") or {},
            )
        except RuleInvalid as exc:
            self._add_rule_errors(exc)
            return cleaned
        cleaned.update(parts)
        return cleaned

    def _add_rule_errors(self, exc: RuleInvalid) -> None:
        """``{"action_config.url": [...]}`` -> an error on the action_config field reading "url: ..."."""
        by_field: dict[str | None, list[str]] = {}
        for key, msgs in exc.errors.items():
            field, _, sub = key.partition(".")
            if field not in self.fields:
                field, sub = None, key
            label = "" if sub in ("", "non_field_errors") else f"{sub}: "
            by_field.setdefault(field, []).extend(f"{label}{msg}" for msg in msgs)
        for field, msgs in by_field.items():
            self.add_error(field, msgs)


class RuleTestForm(forms.Form):
    record = forms.ModelChoiceField(queryset=Record.objects.none(), help_text="A record of the rule's entity.")
    dry_run = forms.BooleanField(
        required=False, initial=True, help_text="Show what would happen without sending, writing or logging anything."
    )

    def __init__(self, *args, rule: AutomationRule, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["record"].queryset = records_of_entity(rule.entity_id)
        self.fields["record"].label_from_instance = lambda record: _record_label(record)


def _record_label(record: Record) -> str:
    data = record.data or {}
    summary = ", ".join(f"{k}: {v}" for k, v in list(data.items())[:3] if v not in (None, "", []))
    return f"{summary[:80]} ({record.pk})" if summary else str(record.pk)


@admin.register(AutomationRule)
class AutomationRuleAdmin(admin.ModelAdmin):
    form = AutomationRuleAdminForm
    list_display = [
        "name",
        "workspace",
        "entity",
        "trigger_type",
        "action_type",
        "is_active",
        "last_run_status",
        "consecutive_failures",
        "updated_at",
    ]
    list_select_related = ["workspace", "entity"]
    list_filter = ["is_active", "trigger_type", "action_type", "workspace"]
    search_fields = ["name", "description", "=id", "entity__name", "workspace__name"]
    autocomplete_fields = ["workspace", "entity"]
    actions = ["activate", "deactivate", "duplicate"]
    readonly_fields = [
        "id",
        "success_rate",
        "recent_runs",
        "consecutive_failures",
        "disabled_reason",
        "disabled_at",
        "signing_secret",
        "created_by",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["workspace", "entity", "name", "description", "is_active"]}),
        ("When", {"fields": ["trigger_type", "trigger_config", "conditions"]}),
        ("Then", {"fields": ["action_type", "action_config"]}),
        ("Throttle", {"fields": ["max_runs_per_minute", "max_runs_per_hour"], "classes": ["collapse"]}),
    ]
    health_fieldset = (
        "Health",
        {"fields": ["success_rate", "recent_runs", "consecutive_failures", "disabled_reason", "disabled_at"]},
    )
    meta_fieldset = ("Details", {"fields": ["id", "signing_secret", "created_by", "created_at", "updated_at"]})

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        return [*self.fieldsets, self.health_fieldset, self.meta_fieldset]

    def get_queryset(self, request):
        return selectors.with_last_run_status(super().get_queryset(request))

    @admin.display(description="last run", ordering="last_run_status")
    def last_run_status(self, obj) -> str:
        return getattr(obj, "last_run_status", None) or "—"

    @admin.display(description=f"success rate (last {selectors.SUCCESS_RATE_WINDOW} finished runs)")
    def success_rate(self, obj) -> str:
        if obj.pk is None:
            return "—"
        succeeded, finished = selectors.success_rate(obj)
        if not finished:
            return "No finished runs yet."
        return f"{100 * succeeded / finished:.0f}% ({succeeded} of {finished} succeeded)"

    @admin.display(description="recent runs")
    def recent_runs(self, obj) -> str:
        if obj.pk is None:
            return "—"
        logs = selectors.recent_runs(obj, RECENT_RUNS)
        if not logs:
            return "No runs yet."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:automations_automationlog_change", args=[log.pk]),
                    f"{log.created_at:%Y-%m-%d %H:%M:%S}",
                    log.status,
                    "test" if log.is_test else log.event_type or "",
                    log.record_id or "",
                    log.attempts,
                    (log.error or "")[:120],
                )
                for log in logs
            ),
        )
        more = reverse("admin:automations_automationlog_changelist") + f"?automation__id__exact={obj.pk}"
        return format_html(
            "<table><thead><tr><th>created</th><th>status</th><th>kind</th><th>record</th><th>attempts</th>"
            '<th>error</th></tr></thead><tbody>{}</tbody></table><p><a href="{}">All runs of this rule</a></p>',
            rows,
            more,
        )

    def save_model(self, request, obj, form, change):
        # Through the services, as in the API: a rule turned back on clears its failure state.
        cleaned = form.cleaned_data
        if change:
            changes = {name: cleaned[name] for name in services.RULE_FIELDS if name in form.changed_data}
            services.rule_update(rule=obj, actor=request.user, **changes)
            return
        fields = {name: cleaned[name] for name in services.RULE_FIELDS if name in cleaned}
        adopt_saved(obj, services.rule_create(workspace=cleaned["workspace"], actor=request.user, **fields))

    def delete_model(self, request, obj):
        services.rule_delete(rule=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.rule_delete(rule=rule, actor=request.user)

    # ------------------------------------------------------------------ actions

    def _set_active(self, request, queryset, active: bool) -> None:
        done, failed = 0, []
        for rule in queryset.select_related("entity"):
            try:
                services.rule_set_active(rule=rule, active=active)
                done += 1
            except RuleInvalid as exc:
                failed.append(f"{rule.name}: {'; '.join(exc.messages())}")
        verb = "Activated" if active else "Deactivated"
        self.message_user(request, f"{verb} {counted(done, 'rule')}.", messages.SUCCESS)
        for problem in failed:
            self.message_user(request, f"Not changed, the rule is invalid: {problem}", messages.ERROR)

    @admin.action(description="Activate selected rules", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected rules", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Duplicate selected rules (copies start inactive)", permissions=["add"])
    def duplicate(self, request, queryset):
        copies = [services.rule_duplicate(rule=rule, actor=request.user) for rule in queryset]
        self.message_user(
            request, f"Created {counted(len(copies), 'inactive copy', 'inactive copies')}.", messages.SUCCESS
        )

    # ------------------------------------------------------------------ "Test on a record"

    def get_urls(self):
        test_view = self.admin_site.admin_view(self.test_view)
        return [path("<path:object_id>/test/", test_view, name="automations_automationrule_test"), *super().get_urls()]

    def test_view(self, request, object_id):
        rule = self.get_object(request, object_id)
        if rule is None:
            raise Http404("No such automation rule.")
        if not self.has_change_permission(request, rule):
            raise PermissionDenied
        outcome = None
        form = RuleTestForm(request.POST or None, rule=rule)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = services.rule_test_run(
                    rule=rule,
                    record=form.cleaned_data["record"],
                    dry_run=form.cleaned_data["dry_run"],
                    actor=request.user,
                )
            except TestRecordInvalid as exc:
                form.add_error(None, exc.messages(keyed=False))
        details = (outcome.get("preview") if outcome and outcome["dry_run"] else (outcome or {}).get("result")) or {}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test “{rule.name}” on a record",
            "opts": self.model._meta,
            "original": rule,
            "rule": rule,
            "form": form,
            "outcome": outcome,
            "details": json_html(details) if details else None,
            "email_html": details.get("html") if isinstance(details, dict) else None,
            "log_url": reverse("admin:automations_automationlog_change", args=[outcome["log_id"]])
            if outcome and outcome.get("log_id")
            else None,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/automations/automationrule/test_rule.html", context)


@admin.register(AutomationLog)
class AutomationLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "automation",
        "status",
        "trigger_type",
        "action_type",
        "record_id",
        "attempts",
        "duration_ms",
        "is_test",
        "executed_at",
    ]
    list_select_related = ["automation"]
    list_filter = ["status", "trigger_type", "action_type", "is_test", "created_at", "automation"]
    search_fields = ["=record_id", "=id"]
    search_help_text = "Search by record id or run id (the full UUID)."
    date_hierarchy = "created_at"
    actions = ["retry"]
    fieldsets = [
        (None, {"fields": ["id", "automation", "status", "error", "is_test", "delivery_id"]}),
        ("Outcome", {"fields": ["result_readable"]}),
        ("Record", {"fields": ["record_id", "event_type", "record_snapshot_pretty", "old_data_pretty"]}),
        (
            "Ledger",
            {
                "fields": [
                    "trigger_type",
                    "action_type",
                    "attempts",
                    "next_attempt_at",
                    "lease_until",
                    "started_at",
                    "finished_at",
                    "executed_at",
                    "duration_ms",
                    "chain_depth",
                    "batch_id",
                    "actor_id",
                    "created_at",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="record (as the run saw it)")
    def record_snapshot_pretty(self, obj) -> str:
        return json_html(obj.record_snapshot)

    @admin.display(description="previous data")
    def old_data_pretty(self, obj) -> str:
        return json_html(obj.old_data)

    @admin.display(description="result")
    def result_readable(self, obj) -> str:
        """The result as its action type describes it (webhook request/response, email, ...)."""
        if obj.action_type not in action_types:
            return json_html(obj.result)
        return action_types.get(obj.action_type).describe_result(obj.result)

    @admin.action(description="Retry selected failed runs")
    def retry(self, request, queryset):
        queued, refused = 0, []
        for log in queryset:
            try:
                services.log_retry(log=log)
                queued += 1
            except RunNotRetryable as exc:
                refused.append(f"{log.pk}: {exc.message}")
        if queued:
            self.message_user(request, f"Queued {counted(queued, 'run')} for retry.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, f"Not retried — {problem}", messages.WARNING)


@admin.register(AutomationEvent)
class AutomationEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event_type", "record_id", "entity_id", "chain_depth", "processed_at"]
    list_filter = ["event_type", ("processed_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["=record_id", "=id"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
