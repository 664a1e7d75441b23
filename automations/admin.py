"""Admin for automation rules, their versions and runs, and the event queue (read-only).

A rule is edited in a form generated from the type registries (``static/automations/rule_editor.js`` reads
``admin_editor``'s schema): trigger, conditions and steps as fields, with the raw JSON as the "advanced"
view. The form posts the same JSON fields the services take (``trigger_config``, ``conditions``,
``steps``) and validates them through ``services.validate_rule_parts``, so without JavaScript the JSON
text areas are the form. Each rule has a "Test on a record" page, a history of its versions (diffs,
restore) and a "Replay failed runs…" page; each run shows its steps' ledger and can be replayed."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.text import counted
from records.models import Record
from records.selectors import record_labels, records_of_entity, search_records
from workspaces.admin import PrettyJSONField, adopt_saved
from workspaces.field_types import record_label
from workspaces.models import Entity
from workspaces.selectors import entities_of

from . import selectors, services, versions
from .action_types import action_types
from .action_types.base import json_html
from .admin_display import duration_text, ledger_html, moment_text, status_html, step_blocks, type_label, zone_of
from .admin_versions import FIELD_LABELS, Vocabulary, diff_snapshots
from .admin_views import RuleEditorViews, record_choice, workspace_by_id
from .exceptions import RuleInvalid, RuleVersionNotFound, RunNotRetryable, TestRecordInvalid
from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from .trigger_types import trigger_types

RECENT_RUNS = 10
VERSIONS_PER_PAGE = 20
# What the rule form edits: the service's fields, with the steps as one list (the seed's single
# action_type / action_config are the first step: the API still takes them, the admin edits steps).
EDITED_FIELDS = tuple(name for name in services.RULE_FIELDS if name not in ("action_type", "action_config"))
JSON_PARTS = ("trigger_config", "conditions", "steps")


def _options_help(registry) -> str:
    lines = []
    for item in registry:
        fields = ", ".join(item.config_serializer().fields) or "no options"
        lines.append(f"{item.name}: {fields}")
    return "; ".join(lines)


def _step_names() -> str:
    return ", ".join(step.name for step in action_types) + ", delay"


class RuleJSONField(PrettyJSONField):
    """A rule part's JSON (the advanced view); a syntax error says what and where."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except DjangoValidationError:
            try:
                json.loads(value)
            except (TypeError, ValueError) as exc:
                where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
                message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise DjangoValidationError(f"Not valid JSON: {message}{where}.", code="invalid") from None
            raise


class EntityChoiceField(forms.ModelChoiceField):
    """The rule's entity: by name among its workspace's entities (with the workspace's name while no
    workspace is chosen yet)."""

    show_workspace = False

    def label_from_instance(self, obj) -> str:
        return f"{obj.workspace.name} · {obj.name}" if self.show_workspace else obj.name


class AutomationRuleAdminForm(forms.ModelForm):
    entity = EntityChoiceField(
        queryset=Entity.objects.none(),
        help_text="The table whose records the rule watches: one of the workspace's entities.",
        error_messages={"invalid_choice": "Choose an entity of the rule's workspace."},
    )
    trigger_type = forms.ChoiceField(choices=(), label="Trigger", help_text="When the rule runs.")
    trigger_config = RuleJSONField(
        required=False,
        label="Trigger options",
        help_text='JSON, e.g. {"to_status": "Closed Won"} for "Status changed". Options per trigger — '
        + _options_help(trigger_types)
        + ".",
    )
    conditions = RuleJSONField(
        required=False,
        help_text='JSON: {"match": "all" or "any", "rules": [{"field": "amount", "op": "gte", "value": 1000}, '
        "or a nested group, …]}; {} = no conditions.",
    )
    steps = RuleJSONField(
        required=False,
        help_text='JSON: what the rule does, in order (1 to 20 steps): [{"type": "create_task", "config": '
        '{"title": "Call {{ name }}"}}, {"type": "delay", "config": {"seconds": 3600}}, …]. Step types: '
        + _step_names()
        + ". Options per action — "
        + _options_help(action_types)
        + ".",
    )

    class Meta:
        model = AutomationRule
        fields = ["workspace", *EDITED_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rule_errors: dict[str, list[str]] = {}
        # Read at form time: the registry is the one list of trigger types.
        self.fields["trigger_type"].choices = trigger_types.choices()
        # A new rule already has its (UUID) pk: "adding" tells a new rule from a stored one.
        self.stored = not self.instance._state.adding
        self.workspace = self.instance.workspace if self.stored else self._chosen_workspace()
        entity_field = self.fields["entity"]
        if self.workspace is not None:
            entity_field.queryset = entities_of(self.workspace)
        else:
            entity_field.queryset = Entity.objects.select_related("workspace").order_by("workspace__name", "name")
            entity_field.show_workspace = True
        if self.stored:
            self.initial["steps"] = self.instance.step_list
        for name, empty in (("trigger_config", {}), ("conditions", {}), ("steps", [])):
            if self.initial.get(name) is None:
                self.initial[name] = empty
            self.fields[name].widget.attrs.update({"rows": 12, "class": "rule-json", "spellcheck": "false"})

    def _chosen_workspace(self):
        raw = self.data.get("workspace") if self.is_bound else self.initial.get("workspace")
        return workspace_by_id(getattr(raw, "pk", raw))

    def clean(self):
        cleaned = super().clean()
        workspace = self.instance.workspace if self.stored else cleaned.get("workspace")
        entity = cleaned.get("entity")
        if workspace and entity and entity.workspace_id != workspace.pk:
            self.add_error("entity", "This entity belongs to another workspace.")
            return cleaned
        if entity is None or any(name in self.errors for name in (*JSON_PARTS, "trigger_type")):
            return cleaned
        try:
            parts = services.validate_rule_parts(
                entity=entity,
                trigger_type=cleaned.get("trigger_type"),
                trigger_config=cleaned.get("trigger_config") or {},
                steps=cleaned.get("steps") if cleaned.get("steps") is not None else [],
                conditions=cleaned.get("conditions") or {},
            )
        except RuleInvalid as exc:
            self.rule_errors = exc.errors  # for the editor, which shows each beside its own input
            self._add_rule_errors(exc.errors)
            return cleaned
        cleaned.update({name: parts[name] for name in JSON_PARTS})
        return cleaned

    def _add_rule_errors(self, errors: dict[str, list[str]]) -> None:
        """``{"steps.2.config.url": [...]}`` -> an error on the steps field reading "Step 3 · url: ..."."""
        by_field: dict[str | None, list[str]] = {}
        for key, msgs in errors.items():
            field, _, sub = key.partition(".")
            if field not in self.fields:
                field, sub = None, key
            label = self._error_label(field, sub)
            by_field.setdefault(field, []).extend(f"{label}{msg}" for msg in msgs)
        for field, msgs in by_field.items():
            self.add_error(field, msgs)

    @staticmethod
    def _error_label(field: str | None, sub: str) -> str:
        if sub in ("", "non_field_errors"):
            return ""
        index, _, rest = sub.partition(".")
        if field == "steps" and index.isdigit():
            option = rest.removeprefix("config").removeprefix(".").removesuffix("non_field_errors").rstrip(".")
            return f"Step {int(index) + 1}" + (f" · {option}" if option else "") + ": "
        return f"{sub}: "


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


class BulkReplayForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(RunStatus.ERROR, "Failed (error)"), (RunStatus.SKIPPED, "Skipped")],
        help_text="Which runs to replay, each from the step that failed.",
    )
    since = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Runs created at or after this time, in the site's time zone (empty: from the first).",
    )
    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Runs created before this time (empty: until now).",
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be after “since”.")
        return cleaned


class ReplayFromStepForm(forms.Form):
    from_step = forms.TypedChoiceField(coerce=int, choices=(), label="Replay from")

    def __init__(self, *args, steps: list[tuple[int, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_step"].choices = steps


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


def run_title(log: AutomationLog) -> str:
    """How a run is named on its page: the rule's name and when it ran (not ids)."""
    return f"Run of “{log.automation.name}” · {timezone.localtime(log.created_at):%Y-%m-%d %H:%M:%S}"


def run_status_html(log: AutomationLog) -> str:
    """The run's status in its colour, with a neutral "test" badge on test runs."""
    status = status_html(log.status, log.get_status_display())
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


def steps_summary(steps: list[dict]) -> str:
    """ "Send email → Delay → Call webhook"."""
    return " → ".join(type_label(str(step.get("type"))) for step in steps)


def rule_url(name: str, rule_id, *args) -> str:
    return reverse(f"admin:automations_automationrule_{name}", args=[rule_id, *args])


@admin.register(AutomationRule)
class AutomationRuleAdmin(RuleEditorViews, admin.ModelAdmin):
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
    autocomplete_fields = ["workspace"]
    actions = ["activate", "deactivate", "duplicate"]
    readonly_fields = [
        "id",
        "version_link",
        "next_occurrences",
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
        ("When", {"fields": ["trigger_type", "trigger_config", "conditions"], "classes": ["rule-when"]}),
        ("Then", {"fields": ["steps"], "classes": ["rule-then"]}),
        ("Throttle", {"fields": ["max_runs_per_minute", "max_runs_per_hour"], "classes": ["collapse"]}),
    ]
    health_fieldset = (
        "Health",
        {"fields": ["success_rate", "recent_runs", "consecutive_failures", "disabled_reason", "disabled_at"]},
    )
    meta_fieldset = (
        "Details",
        {"fields": ["id", "version_link", "signing_secret", "created_by", "created_at", "updated_at"]},
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        when_title, when = self.fieldsets[1]
        trigger = trigger_types.get(obj.trigger_type) if obj.trigger_type in trigger_types else None
        if trigger is not None and trigger.time_based:
            when = {**when, "fields": [*when["fields"], "next_occurrences"]}
        details, options = self.meta_fieldset
        signs = any(
            step.get("type") in action_types and action_types.get(step["type"]).signs_requests for step in obj.step_list
        )
        if not signs:  # the secret only means something where requests are signed with it
            options = {**options, "fields": [name for name in options["fields"] if name != "signing_secret"]}
        return [
            self.fieldsets[0],
            (when_title, when),
            *self.fieldsets[2:],
            self.health_fieldset,
            (details, options),
        ]

    def get_readonly_fields(self, request, obj=None):
        # A rule stays in its workspace (the services refuse to move it).
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    def get_queryset(self, request):
        return selectors.with_last_run_status(super().get_queryset(request))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        context["rule_editor"] = self.editor_page_data(
            rule=obj, workspace=form.workspace, entity=self._form_entity(form), errors=form.rule_errors
        )
        picker = RecordPicker(search_url="", label_for=lambda value: "")
        context["preview_picker"] = picker.render("preview_record", None, attrs={"id": "id_preview_record"})
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def _form_entity(form) -> Entity | None:
        value = form["entity"].value()
        if not value:
            return None
        try:
            return form.fields["entity"].queryset.filter(pk=getattr(value, "pk", value)).first()
        except (ValueError, DjangoValidationError):
            return None

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

    @admin.display(description="version")
    def version_link(self, obj) -> str:
        if obj.pk is None:
            return "—"
        return format_html(
            'Version {} · <a href="{}">history and restore</a>', obj.version, rule_url("versions", obj.pk)
        )

    @admin.display(description="next occurrences")
    def next_occurrences(self, obj) -> str:
        """A scheduled rule's next five times (in its time zone); how a date-based rule's times are set."""
        trigger = trigger_types.get(obj.trigger_type) if obj.pk and obj.trigger_type in trigger_types else None
        if trigger is None or not trigger.time_based:
            return "—"
        config = obj.trigger_config or {}
        times = trigger.next_times(obj)
        if not times:
            offset = int(config.get("offset_seconds") or 0)
            when = "" if not offset else f" {duration_text(offset)} {'after' if offset > 0 else 'before'}"
            return format_html(
                "Once per record, at the date in its “{}” field{}. A record's own time shows on "
                '<a href="{}">Test on a record</a>.',
                config.get("field", ""),
                when,
                rule_url("test", obj.pk),
            )
        tz = zone_of(config.get("timezone"))
        items = format_html_join("", "<li>{}</li>", ((moment_text(moment, tz),) for moment in times))
        return format_html('<ul class="next-occurrences">{}</ul><p class="help">Times in {}.</p>', items, str(tz))

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
        # Through the services, as in the API: every change is a version; a rule turned back on clears its
        # failure state.
        cleaned = form.cleaned_data
        if change:
            changes = {name: cleaned[name] for name in EDITED_FIELDS if name in form.changed_data}
            services.rule_update(rule=obj, actor=request.user, **changes)
            return
        fields = {name: cleaned[name] for name in EDITED_FIELDS if name in cleaned}
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

    # ------------------------------------------------------------------ pages of one rule

    def get_urls(self):
        def view(method):
            return self.admin_site.admin_view(method)

        return [
            *self.editor_urls(),
            path("<path:object_id>/test/", view(self.test_view), name="automations_automationrule_test"),
            path(
                "<path:object_id>/test/records/",
                view(self.test_records_view),
                name="automations_automationrule_test_records",
            ),
            path("<path:object_id>/versions/", view(self.versions_view), name="automations_automationrule_versions"),
            path(
                "<path:object_id>/versions/<int:version>/restore/",
                view(self.restore_view),
                name="automations_automationrule_restore",
            ),
            path("<path:object_id>/replay/", view(self.replay_view), name="automations_automationrule_replay"),
            *super().get_urls(),
        ]

    def _rule_or_404(self, request, object_id, *, change: bool = True) -> AutomationRule:
        rule = self.get_object(request, object_id)
        if rule is None:
            raise Http404("No such automation rule.")
        allowed = self.has_change_permission(request, rule) if change else self.has_view_permission(request, rule)
        if not allowed:
            raise PermissionDenied
        return rule

    def _page_context(self, request, rule: AutomationRule, title: str, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": rule,
            "rule": rule,
            "has_view_permission": True,
            **extra,
        }

    def test_records_view(self, request, object_id):
        """The record picker's matches: records of the rule's entity by label, text or id (JSON)."""
        rule = self._rule_or_404(request, object_id)
        found = search_records(rule.entity, request.GET.get("q", ""))
        return JsonResponse({"results": [record_choice(record, label) for record, label in found]})

    def test_view(self, request, object_id):
        rule = self._rule_or_404(request, object_id)
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
        tz = zone_of((rule.trigger_config or {}).get("timezone"))
        context = self._page_context(
            request,
            rule,
            f"Test “{rule.name}” on a record",
            form=form,
            outcome=outcome,
            steps=step_blocks(outcome.get("steps") or [], dry_run=outcome["dry_run"]) if outcome else [],
            next_occurrences=[moment_text(moment, tz) for moment in (outcome or {}).get("next_occurrences") or []],
            time_zone=str(tz),
            trigger_label=trigger_types.get(rule.trigger_type).label
            if rule.trigger_type in trigger_types
            else rule.trigger_type,
            steps_label=steps_summary(rule.step_list),
            log_url=reverse("admin:automations_automationlog_change", args=[outcome["log_id"]])
            if outcome and outcome.get("log_id")
            else None,
        )
        return TemplateResponse(request, "admin/automations/automationrule/test_rule.html", context)

    def versions_view(self, request, object_id):
        """Every version of the rule, newest first, each with who, when, what changed and the diff from the
        version before; and the diff between any two (``?from=1&to=3``)."""
        rule = self._rule_or_404(request, object_id, change=False)
        all_versions = selectors.rule_versions(rule)
        page = Paginator(all_versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
        shown = list(page.object_list)
        # The version before the last one shown, for its diff.
        before_page = all_versions.filter(version__lt=shown[-1].version).first() if shown else None
        vocabulary = Vocabulary(
            {str(entity.pk): entity.name for entity in entities_of(rule.workspace)}, rule.entity.fields
        )
        entries = []
        for index, version in enumerate(shown):
            previous = shown[index + 1] if index + 1 < len(shown) else before_page
            entries.append(
                {
                    "version": version,
                    "previous": previous.version if previous else None,
                    "changes": [FIELD_LABELS.get(name, name) for name in version.changes],
                    "diffs": diff_snapshots(previous.snapshot if previous else None, version.snapshot, vocabulary),
                    "is_current": version.version == rule.version,
                }
            )
        numbers = list(all_versions.values_list("version", flat=True))
        compare = None
        try:
            chosen = int(request.GET["from"]), int(request.GET["to"])
        except (KeyError, ValueError):
            chosen = None
        if chosen and chosen[0] in numbers and chosen[1] in numbers:
            a = selectors.rule_version(rule=rule, version=chosen[0])
            b = selectors.rule_version(rule=rule, version=chosen[1])
            compare = {"from": a, "to": b, "diffs": diff_snapshots(a.snapshot, b.snapshot, vocabulary)}
        context = self._page_context(
            request,
            rule,
            f"Versions of “{rule.name}”",
            entries=entries,
            page=page,
            numbers=numbers,
            compare=compare,
            chosen=chosen,
            can_restore=self.has_change_permission(request, rule),
        )
        return TemplateResponse(request, "admin/automations/automationrule/versions.html", context)

    def restore_view(self, request, object_id, version):
        """Confirm, then make a new version with an old one's content (``services.rule_restore``)."""
        rule = self._rule_or_404(request, object_id)
        try:
            target = selectors.rule_version(rule=rule, version=version)
        except RuleVersionNotFound:
            raise Http404("No such version of this rule.") from None
        versions_url = rule_url("versions", rule.pk)
        if request.method == "POST":
            before = rule.version
            try:
                services.rule_restore(rule=rule, version=version, actor=request.user)
            except RuleInvalid as exc:
                self.message_user(
                    request,
                    f"Version {version} cannot be restored as it is: {'; '.join(exc.messages())}",
                    messages.ERROR,
                )
                return HttpResponseRedirect(versions_url)
            if rule.version == before:
                self.message_user(request, f"Nothing changed: the rule already has version {version}'s content.")
            else:
                self.message_user(
                    request, f"Restored version {version}: the rule is now version {rule.version}.", messages.SUCCESS
                )
            return HttpResponseRedirect(rule_url("change", rule.pk))
        vocabulary = Vocabulary(
            {str(entity.pk): entity.name for entity in entities_of(rule.workspace)}, rule.entity.fields
        )
        context = self._page_context(
            request,
            rule,
            f"Restore version {version} of “{rule.name}”?",
            target=target,
            diffs=diff_snapshots(versions.snapshot_of(rule), target.snapshot, vocabulary),
            versions_url=versions_url,
        )
        return TemplateResponse(request, "admin/automations/automationrule/restore_version.html", context)

    def replay_view(self, request, object_id):
        """Replay the rule's failed (or skipped) runs of a time range, each from its failed step, after a
        confirmation with their number (``services.logs_retry``, at most 5,000 at a time)."""
        rule = self._rule_or_404(request, object_id)
        form = BulkReplayForm(request.POST or None)
        count = None
        if request.method == "POST" and form.is_valid():
            status, since, until = (form.cleaned_data[key] for key in ("status", "since", "until"))
            if "_confirm" in request.POST:
                try:
                    queued = services.logs_retry(rule=rule, status=status, since=since, until=until, actor=request.user)
                except RunNotRetryable as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(request, f"Queued {counted(queued, 'run')} for replay.", messages.SUCCESS)
                    runs = reverse("admin:automations_automationlog_changelist")
                    return HttpResponseRedirect(f"{runs}?automation__id__exact={rule.pk}")
            count = selectors.rule_runs(rule, status=status, since=since, until=until, is_test=False).count()
        context = self._page_context(
            request,
            rule,
            f"Replay failed runs of “{rule.name}”",
            form=form,
            count=count,
            limit=f"{services.MAX_BULK_REPLAY:,}",
            over_limit=count is not None and count > services.MAX_BULK_REPLAY,
        )
        return TemplateResponse(request, "admin/automations/automationrule/replay_runs.html", context)


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
    actions = ["retry", "replay_from_step"]
    fieldsets = [
        (
            None,
            {"fields": ["automation", "status_badge", "error", "rule_version_link", "caused_by", "replays_readable"]},
        ),
        ("Steps", {"fields": ["steps_ledger"]}),
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
                    "current_step",
                    "due_at",
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

    def has_replay_permission(self, request, obj=None):
        """Replaying a run acts for its rule: it takes the right to change rules."""
        return request.user.has_perm("automations.change_automationrule")

    def get_urls(self):
        replay = self.admin_site.admin_view(self.replay_view)
        return [
            path("<path:object_id>/replay/", replay, name="automations_automationlog_replay"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Automation runs", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        log = self.get_object(request, object_id)
        if log is not None:
            title = run_title(log)
            extra_context = {
                "title": "Automation run",
                "subtitle": title,
                "run_title": title,
                "can_replay": self.has_replay_permission(request) and not log.is_test,
                **(extra_context or {}),
            }
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
        return run_status_html(obj)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj) -> str:
        return "—" if obj.duration_ms is None else f"{obj.duration_ms} ms"

    @admin.display(description="rule version")
    def rule_version_link(self, obj) -> str:
        """The version of the rule whose steps this run executes."""
        if obj.rule_version is None:
            return "— (the run predates versions)"
        url = rule_url("versions", obj.automation_id) + f"#version-{obj.rule_version}"
        current = " (the rule's current version)" if obj.rule_version == obj.automation.version else ""
        return format_html('<a href="{}">Version {}</a>{}', url, obj.rule_version, current)

    @admin.display(description="steps")
    def steps_ledger(self, obj) -> str:
        """Each step: its type, status, attempts, times, result (as its type describes it) and error."""
        return ledger_html(obj.step_ledger)

    @admin.display(description="replays")
    def replays_readable(self, obj) -> str:
        """Who replayed the run by hand, when, and from which step."""
        replays = [replay for replay in obj.replays or [] if isinstance(replay, dict)]
        if not replays:
            return "None: the run has not been replayed by hand."
        names = self._usernames(replay.get("by") for replay in replays)
        return format_html(
            '<ul class="run-replays">{}</ul>',
            format_html_join(
                "",
                "<li>{} by {}, from step {}</li>",
                (
                    (
                        moment_text(replay.get("at")),
                        names.get(replay.get("by"), "someone no longer here" if replay.get("by") else "the system"),
                        int(replay.get("from_step") or 0) + 1,
                    )
                    for replay in replays
                ),
            ),
        )

    @staticmethod
    def _usernames(user_ids) -> dict:
        ids = {user_id for user_id in user_ids if user_id is not None}
        if not ids:
            return {}
        users = get_user_model().objects.filter(pk__in=ids)
        return {user.pk: user.get_username() for user in users}

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

    # ------------------------------------------------------------------ replays

    @admin.action(description="Replay selected runs from the failed step", permissions=["replay"])
    def retry(self, request, queryset):
        queued, refused = 0, []
        for log in queryset.select_related("automation"):
            try:
                services.log_retry(log=log, actor=request.user)
                queued += 1
            except RunNotRetryable as exc:
                refused.append(f"{run_title(log)}: {exc.message}")
        if queued:
            self.message_user(request, f"Queued {counted(queued, 'run')} for retry.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, f"Not retried — {problem}", messages.WARNING)

    @admin.action(description="Replay one run from step N…", permissions=["replay"])
    def replay_from_step(self, request, queryset):
        runs = list(queryset[:2])
        if len(runs) != 1:
            self.message_user(request, "Choose exactly one run to replay from a step of your choice.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:automations_automationlog_replay", args=[runs[0].pk]))

    def replay_view(self, request, object_id):
        """Replay one run from a step of the admin's choice (``services.log_retry(from_step=N)``)."""
        log = self.get_object(request, object_id)
        if log is None:
            raise Http404("No such run.")
        if not self.has_replay_permission(request, log):
            raise PermissionDenied
        rule = log.automation
        ledger = log.step_ledger if log.step_states else None
        planned = versions.steps_for(log, rule)
        choices = [
            (
                index,
                f"Step {index + 1} · {type_label(str(step.get('type')))}"
                + (f" ({ledger[index].get('status')})" if ledger and index < len(ledger) else ""),
            )
            for index, step in enumerate(planned)
        ]
        failed = log.current_step if log.status in (RunStatus.ERROR, RunStatus.SKIPPED) else 0
        form = ReplayFromStepForm(request.POST or None, steps=choices, initial={"from_step": failed})
        if request.method == "POST" and form.is_valid():
            try:
                services.log_retry(log=log, from_step=form.cleaned_data["from_step"], actor=request.user)
            except RunNotRetryable as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Queued the run for replay from step {form.cleaned_data['from_step'] + 1}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:automations_automationlog_change", args=[log.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replay a run of “{rule.name}”",
            "opts": self.model._meta,
            "original": log,
            "log": log,
            "run_title": run_title(log),
            "form": form,
            "ledger": ledger_html(log.step_ledger),
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/automations/automationlog/replay_run.html", context)


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
