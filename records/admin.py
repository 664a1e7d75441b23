"""Admin for records (data as readable JSON, validated against the entity) and tasks.

Record saves go through the model's ``save()`` so ``post_save`` fires (automations run as for API
writes); a save that changes nothing is skipped, as in ``records.services.record_update``."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from workspaces.admin import PrettyJSONField
from workspaces.field_types import clean_record_data

from .models import Record, Task


class RecordAdminForm(forms.ModelForm):
    data = PrettyJSONField(required=False, help_text="Field values keyed by field name, checked against the entity.")

    class Meta:
        model = Record
        fields = ["entity", "data"]

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
        obj.actor = request.user  # automation receivers read the actor like for API writes
        if not change:
            obj.workspace_id = obj.entity.workspace_id
            obj.created_by = obj.updated_by = request.user
            obj.save(force_insert=True)
            return
        if obj.data == obj.previous_data:
            return
        obj.updated_by = request.user
        obj.save(update_fields=["data", "updated_by", "updated_at"])


class TaskAdminForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = ["workspace", "title", "description", "status", "record", "assignee", "due_date", "created_by"]

    def clean(self):
        cleaned = super().clean()
        workspace, record = cleaned.get("workspace"), cleaned.get("record")
        if workspace and record and record.workspace_id != workspace.pk:
            self.add_error("record", "This record belongs to another workspace.")
        assignee = cleaned.get("assignee")
        if workspace and assignee and not assignee.memberships.filter(workspace=workspace).exists():
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

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        if "status" in form.changed_data or not change:
            obj.completed_at = timezone.now() if obj.status == Task.Status.DONE else None
        super().save_model(request, obj, form, change)
