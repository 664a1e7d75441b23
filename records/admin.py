"""Admin for records (data as readable JSON, validated against the entity) and tasks.

Every write goes through ``records.services`` (as API writes do), so automations run for admin edits
too, a save that changes nothing saves nothing, and a task's ``completed_at`` follows its status."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from workspaces.admin import PrettyJSONField, adopt_saved
from workspaces.field_types import clean_record_data
from workspaces.selectors import is_member

from . import services
from .models import Record, Task


class RecordAdminForm(forms.ModelForm):
    # Not copied onto the record by the form: the service writes it (and decides whether it changed).
    data = PrettyJSONField(required=False, help_text="Field values keyed by field name, checked against the entity.")

    class Meta:
        model = Record
        fields = ["entity"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["data"].initial = self.instance.data

    def clean(self):
        cleaned = super().clean()
        entity = cleaned.get("entity") or (self.instance.entity if self.instance.entity_id else None)
        if entity is None or "data" not in cleaned:
            return cleaned
        data, errors = clean_record_data(entity.fields, cleaned.get("data") or {})
        if errors:
            self.add_error(
                "data", ValidationError([f"{field}: {msg}" for field, messages in errors.items() for msg in messages])
            )
        else:
            cleaned["data"] = data
        return cleaned


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    fields = ["title", "status", "assignee", "due_date"]
    raw_id_fields = ["assignee"]
    show_change_link = True


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    form = RecordAdminForm
    list_display = ["__str__", "entity", "workspace", "data_summary", "created_at", "updated_at"]
    list_select_related = ["entity", "workspace"]
    list_filter = ["entity__workspace", "entity"]
    search_fields = ["id"]
    autocomplete_fields = ["entity"]
    readonly_fields = ["id", "workspace", "data_pretty", "created_by", "updated_by", "created_at", "updated_at"]
    exclude = ["data"]  # the form's own field: the service writes it, the form does not set it on the record
    inlines = [TaskInline]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["entity", "data"]
        return [
            *("id", "entity", "workspace", "data", "data_pretty"),
            *("created_by", "updated_by", "created_at", "updated_at"),
        ]

    def get_readonly_fields(self, request, obj=None):
        # A record stays in its entity: its data was validated against that schema.
        return [*self.readonly_fields, "entity"] if obj is not None else self.readonly_fields

    @admin.display(description="data")
    def data_summary(self, obj) -> str:
        text = ", ".join(f"{k}: {v}" for k, v in (obj.data or {}).items() if v not in (None, "", []))
        return text if len(text) <= 120 else text[:117] + "…"

    @admin.display(description="data (as stored)")
    def data_pretty(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data.get("data") or {}
        if change:
            services.record_update(record=obj, data=data, actor=request.user, merge=False)
        else:
            adopt_saved(obj, services.record_create(entity=form.cleaned_data["entity"], data=data, actor=request.user))

    def delete_model(self, request, obj):
        services.record_delete(record=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for record in queryset.select_related("entity"):
            services.record_delete(record=record, actor=request.user)

    def save_formset(self, request, form, formset, change):
        """The record's tasks, through the task services."""
        formset.save(commit=False)
        for task in formset.deleted_objects:
            services.task_delete(task=task, actor=request.user)
        for task, changed in formset.changed_objects:
            services.task_update(task=task, actor=request.user, **{name: getattr(task, name) for name in changed})
        for task in formset.new_objects:
            fields = {name: getattr(task, name) for name in services.TASK_FIELDS if name != "record"}
            adopt_saved(
                task,
                services.task_create(
                    workspace=form.instance.workspace, record=form.instance, actor=request.user, **fields
                ),
            )


class TaskAdminForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = ["workspace", "title", "description", "status", "record", "assignee", "due_date", "created_by"]

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace") or (self.instance.workspace if self.instance.workspace_id else None)
        record = cleaned.get("record")
        if workspace and record and record.workspace_id != workspace.pk:
            self.add_error("record", "This record belongs to another workspace.")
        assignee = cleaned.get("assignee")
        if workspace and assignee and not is_member(assignee, workspace):
            self.add_error("assignee", "The assignee is not a member of this workspace.")
        return cleaned


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    list_display = [
        "title",
        "workspace",
        "status",
        "assignee",
        "due_date",
        "record",
        "created_by_rule_id",
        "created_at",
    ]
    list_select_related = ["workspace", "assignee", "record"]
    list_filter = ["status", "workspace"]
    search_fields = ["title", "description"]
    autocomplete_fields = ["workspace"]
    raw_id_fields = ["record", "assignee", "created_by"]
    readonly_fields = ["id", "created_by_rule_id", "created_by_run_id", "completed_at", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # A task stays in its workspace, with its author (the services change neither).
        return [*self.readonly_fields, "workspace", "created_by"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        cleaned = form.cleaned_data
        if change:
            changes = {name: cleaned[name] for name in services.TASK_FIELDS if name in form.changed_data}
            services.task_update(task=obj, actor=request.user, **changes)
            return
        fields = {name: cleaned[name] for name in services.TASK_FIELDS if name in cleaned and name != "title"}
        task = services.task_create(
            workspace=cleaned["workspace"],
            title=cleaned["title"],
            actor=cleaned.get("created_by") or request.user,
            **fields,
        )
        adopt_saved(obj, task)

    def delete_model(self, request, obj):
        services.task_delete(task=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for task in queryset:
            services.task_delete(task=task, actor=request.user)
