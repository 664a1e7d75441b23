"""Admin for automation rules (validated through the same type registries as the API), their runs
(read-only, retry failed ones) and the event queue (read-only). Each rule has a "Test on a record" page."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.text import counted
from records.models import Record
from records.selectors import record_labels, records_of_entity, search_records
from workspaces.admin import PrettyJSONField, adopt_saved
from workspaces.field_types import record_label

from . import rule_validation, selectors, services
from .action_types import action_types
from .action_types.base import json_html
from .exceptions import RuleInvalid, RunNotRetryable, TestRecordInvalid
from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from .step_types import step_type, step_type_names
from .trigger_types import trigger_types

RECENT_RUNS = 10
CONFIG_FIELDS = ("trigger_config", "action_config", "conditions", "steps")


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
    steps = PrettyJSONField(
        required=False,
        help_text='All the steps, in order: [{"type": "create_task", "config": {...}}, {"type": "delay", "config": '
        '{"seconds": 3600}}, …]. Leave empty for a one-step rule (the action above); when filled, its first '
        "step is the action above.",
    )

    class Meta:
        model = AutomationRule
        fields = ["workspace", *services.RULE_FIELDS]  # the same editable fields as the API

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read at form time: the registries are the single list of types.
        self.fields["trigger_type"].choices = trigger_types.choices()
        self.fields["action_type"].choices = [(name, step_type(name).label) for name in step_type_names()]
        if self.instance.pk and not self.instance.steps:
            self.initial["steps"] = self.instance.step_list
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
                steps=self._steps(cleaned),
                conditions=cleaned.get("conditions") or {},
                single_action=not self._steps_field_used,
            )
        except RuleInvalid as exc:
            self._add_rule_errors(exc)
            return cleaned
        cleaned.update(parts)
        return cleaned

    def _steps(self, cleaned: dict) -> list:
        """The steps the form asks for: the steps field when it was edited (or given on a new rule), with the
        action fields as its first step; else the rule's steps with the action fields as the first."""
        changed, new = set(self.changed_data), not self.instance.pk
        given = {"steps": cleaned.get("steps")} if cleaned.get("steps") and ("steps" in changed or new) else {}
        for name in ("action_type", "action_config"):
            if name in changed or new:
                given[name] = cleaned.get(name) if name == "action_type" else (cleaned.get(name) or {})
        if "steps" in given and not new:
            given = {k: v for k, v in given.items() if k == "steps" or k in changed}
        current = None if new else self.instance.step_list
        self._steps_field_used = "steps" in given
        steps = rule_validation.steps_from_input(given, current=current)
        return steps if steps is not None else (current or [])

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


class RecordPicker(forms.Widget):
    """A search box over the rule's entity's records (by name or other text, or a pasted id) that
    keeps the chosen record's id in a hidden input; matches come from the rule's record search URL."""

    template_name = "automations/record_picker.html"  # in the app: form widgets render with the app loaders

    class Media:
        js = ["automations/record_picker.js"]
        css = {"all": ["automations/admin.css"]}

    def __init__(self, *, search_url: str, label_for, attrs=None):
        super().__init__(attrs)
        self.search_url = search_url
        self.label_for = label_for

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["search_url"] = self.search_url
        context["widget"]["selected_label"] = self.label_for(value) if value else ""
        return context


class RuleTestForm(forms.Form):
    record = forms.ModelChoiceField(
        queryset=Record.objects.none(),
        help_text="A record of the rule's entity: type part of its name or text, or paste its id.",
        error_messages={"invalid_choice": "Choose a record of this rule's entity."},
    )
    dry_run = forms.BooleanField(
        required=False, initial=True, help_text="Show what would happen without sending, writing or logging anything."
    )

    def __init__(self, *args, rule: AutomationRule, **kwargs):
        super().__init__(*args, **kwargs)
        records = records_of_entity(rule.entity_id)
        self.fields["record"].queryset = records
        search_url = reverse("admin:automations_automationrule_test_records", args=[rule.pk])
        self.fields["record"].widget = RecordPicker(search_url=search_url, label_for=self._label_for(rule, records))

    @staticmethod
    def _label_for(rule: AutomationRule, records):
        def label(value) -> str:
            try:
                record = records.filter(pk=value).first()
            except (ValueError, DjangoValidationError):
                return str(value)
            if record is None:
                return str(value)
            return record_label(rule.entity.fields, record.data) or str(record.pk)

        return label


def record_choice(record: Record, label: str) -> dict:
    """A record as the picker lists it: its label, then a few other values and the start of its id."""
    values = [str(v) for v in (record.data or {}).values() if v not in (None, "", []) and str(v) != label][:3]
    return {"id": str(record.pk), "label": label, "detail": " · ".join([*values, f"id {str(record.pk)[:8]}…"])}


def registry_filter(field: str, registry, title: str) -> type[admin.SimpleListFilter]:
    """A list filter on ``field`` offering the registered types by their labels ("Record created")."""

    class TypeFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return registry.choices()

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    TypeFilter.title = title
    return TypeFilter


TriggerTypeFilter = registry_filter("trigger_type", trigger_types, "trigger")
ActionTypeFilter = registry_filter("action_type", action_types, "action")


TEST_BADGE = '<span class="run-test-badge" title="{}">test</span>'
STATUS_COLOURS = {
    RunStatus.SUCCESS: "#1a7f37",
    RunStatus.ERROR: "#ba2121",
    RunStatus.RETRYING: "#9a6700",
    RunStatus.SKIPPED: "#57606a",
}


def run_title(log: AutomationLog) -> str:
    """How a run is named on its page: the rule's name and when it ran (not ids)."""
    return f"Run of “{log.automation.name}” · {timezone.localtime(log.created_at):%Y-%m-%d %H:%M:%S}"


def run_status_html(log: AutomationLog) -> str:
    """The run's status in its colour, with a neutral "test" badge on test runs."""
    status = format_html(
        '<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(log.status, "inherit"), log.get_status_display()
    )
    if not log.is_test:
        return status
    return format_html("{} {}", status, format_html(TEST_BADGE, "A test run: started by hand, not by a change"))


def run_record_html(log: AutomationLog, entity_fields: list[dict]) -> str:
    """The run's record by its name (as the run saw it), linked to the record; its id on hover."""
    if log.record_id is None:
        return "—"
    label = record_label(entity_fields, (log.record_snapshot or {}).get("data")) or f"Record {str(log.record_id)[:8]}"
    url = reverse("admin:records_record_change", args=[log.record_id])
    return format_html('<a href="{}" title="{}">{}</a>', url, log.record_id, label)


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
    list_filter = ["is_active", TriggerTypeFilter, ActionTypeFilter, "workspace"]

    class Media:
        css = {"all": ["automations/admin.css"]}

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
        details, options = self.meta_fieldset
        signs = obj.action_type in action_types and action_types.get(obj.action_type).signs_requests
        if not signs:  # the secret only means something where requests are signed with it
            options = {**options, "fields": [name for name in options["fields"] if name != "signing_secret"]}
        return [*self.fieldsets, self.health_fieldset, (details, options)]

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
            '<tr><td class="nowrap"><a href="{}">{}</a></td><td class="nowrap">{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:automations_automationlog_change", args=[log.pk]),
                    f"{timezone.localtime(log.created_at):%Y-%m-%d %H:%M:%S}",
                    run_status_html(log),
                    run_record_html(log, obj.entity.fields),
                    log.attempts,
                    (log.error or "")[:120],
                )
                for log in logs
            ),
        )
        more = reverse("admin:automations_automationlog_changelist") + f"?automation__id__exact={obj.pk}"
        return format_html(
            '<table class="recent-runs"><thead><tr><th>when</th><th>status</th><th>record</th><th>attempts</th>'
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
        records_view = self.admin_site.admin_view(self.test_records_view)
        return [
            path("<path:object_id>/test/", test_view, name="automations_automationrule_test"),
            path("<path:object_id>/test/records/", records_view, name="automations_automationrule_test_records"),
            *super().get_urls(),
        ]

    def test_records_view(self, request, object_id):
        """The record picker's matches: records of the rule's entity by label, text or id (JSON)."""
        rule = self.get_object(request, object_id)
        if rule is None:
            raise Http404("No such automation rule.")
        if not self.has_change_permission(request, rule):
            raise PermissionDenied
        found = search_records(rule.entity, request.GET.get("q", ""))
        return JsonResponse({"results": [record_choice(record, label) for record, label in found]})

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
        email_html = details.get("html") if isinstance(details, dict) else None
        if email_html:  # rendered below as the recipient sees it, not as a JSON string
            details = {key: value for key, value in details.items() if key != "html"}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test “{rule.name}” on a record",
            "opts": self.model._meta,
            "original": rule,
            "rule": rule,
            "form": form,
            "outcome": outcome,
            "details": json_html(details) if details else None,
            "email_html": email_html,
            "trigger_label": trigger_types.get(rule.trigger_type).label
            if rule.trigger_type in trigger_types
            else rule.trigger_type,
            "action_label": action_types.get(rule.action_type).label
            if rule.action_type in action_types
            else rule.action_type,
            "log_url": reverse("admin:automations_automationlog_change", args=[outcome["log_id"]])
            if outcome and outcome.get("log_id")
            else None,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/automations/automationrule/test_rule.html", context)


@admin.register(AutomationLog)
class AutomationLogAdmin(admin.ModelAdmin):
    # Fits 1366 px beside the navigation and the filters; the rest is on the run's page.
    list_display = ["when", "rule", "record_label", "status_badge", "duration"]
    list_display_links = ["when"]
    list_select_related = ["automation__entity"]
    list_filter = ["status", TriggerTypeFilter, ActionTypeFilter, "is_test", "created_at", "automation"]
    search_fields = ["=record_id", "=id"]
    search_help_text = "Search by record id or run id (the full UUID)."
    date_hierarchy = "created_at"
    actions = ["retry"]
    fieldsets = [
        (None, {"fields": ["automation", "status_badge", "error", "caused_by"]}),
        ("Outcome", {"fields": ["result_readable"]}),
        ("Record", {"fields": ["record_label", "event_type", "record_snapshot_pretty", "old_data_pretty"]}),
        (
            "Ledger",
            {
                "fields": [
                    "id",
                    "delivery_id",
                    "record_id",
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
                ],
                "classes": ["collapse"],
            },
        ),
    ]

    class Media:
        css = {"all": ["automations/admin.css"]}

    def get_readonly_fields(self, request, obj=None):
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Automation runs", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        log = self.get_object(request, object_id)
        if log is not None:
            title = run_title(log)
            extra_context = {"title": "Automation run", "subtitle": title, "run_title": title, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="when", ordering="created_at")
    def when(self, obj) -> str:
        return f"{timezone.localtime(obj.created_at):%b %-d, %H:%M:%S}"

    @admin.display(description="rule", ordering="automation__name")
    def rule(self, obj) -> str:
        return obj.automation.name

    @admin.display(description="record")
    def record_label(self, obj) -> str:
        """The record's name (as the run saw it), linked to the record."""
        if obj.record_id is None:
            return "—"
        entity_fields = obj.automation.entity.fields if obj.automation.entity_id == obj.entity_id else []
        data = (obj.record_snapshot or {}).get("data")
        label = record_label(entity_fields, data) or f"Record {str(obj.record_id)[:8]}"
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            reverse("admin:records_record_change", args=[obj.record_id]),
            obj.record_id,
            label,
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj) -> str:
        """The status in its colour, with a neutral "test" badge on test runs."""
        status = format_html(
            '<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(obj.status, "inherit"), obj.get_status_display()
        )
        if not obj.is_test:
            return status
        return format_html("{} {}", status, format_html(TEST_BADGE, "A test run: started by hand, not by a change"))

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj) -> str:
        return "—" if obj.duration_ms is None else f"{obj.duration_ms} ms"

    @admin.display(description="caused by")
    def caused_by(self, obj) -> str:
        """The chain of runs whose record changes led to this run, first to last."""
        links = [link for link in obj.chain or [] if isinstance(link, dict)]
        if not links:
            return "A change to the record, not made by an automation."
        names = selectors.rule_names(link.get("rule_id") for link in links)
        items = format_html_join(
            "",
            "<li>{} changed {}</li>",
            ((self._rule_link(link.get("rule_id"), names), self._record_link(link.get("record_id"))) for link in links),
        )
        return format_html('<ol class="run-chain">{}<li>… which started this run</li></ol>', items)

    @staticmethod
    def _rule_link(rule_id, names: dict[str, str]) -> str:
        name = names.get(str(rule_id))
        if name is None:
            return format_html("a deleted rule ({})", rule_id)
        return format_html(
            'the rule <a href="{}">{}</a>', reverse("admin:automations_automationrule_change", args=[rule_id]), name
        )

    @staticmethod
    def _record_link(record_id) -> str:
        if not record_id:
            return "a record"
        label = record_labels([record_id]).get(str(record_id)) or f"record {str(record_id)[:8]}"
        return format_html('<a href="{}">{}</a>', reverse("admin:records_record_change", args=[record_id]), label)

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
        for log in queryset.select_related("automation"):
            try:
                services.log_retry(log=log)
                queued += 1
            except RunNotRetryable as exc:
                refused.append(f"{run_title(log)}: {exc.message}")
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
