"""Admin for workspaces (members inline) and entities (field schema as readable, validated JSON).

Users keep Django's own admin. Writes go through ``workspaces.services`` where a rule lives there
(schema changes are checked against existing records)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count

from . import services
from .exceptions import FieldSchemaInvalid, SchemaConflict
from .field_types import field_types, validate_field_specs
from .models import Entity, Membership, Role, Workspace


class PrettyJSONField(forms.JSONField):
    """A JSON form field that shows its value indented, one key per line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 16, "cols": 90, "style": "font-family: monospace"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, cls=self.encoder)


def adopt_saved(obj, saved) -> None:
    """Make the admin's unsaved ``obj`` the object a service created: the admin goes on with ``obj``
    (its id for the redirect and the history entry, its name for the message)."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj.refresh_from_db()


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        owners = 0
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            if form.cleaned_data.get("role") == Role.OWNER:
                owners += 1
        if owners == 0 and self.instance.pk is not None:
            raise ValidationError("A workspace must keep at least one owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "member_count", "entity_count", "created_at"]
    list_select_related = ["created_by"]
    search_fields = ["name", "description", "id"]
    readonly_fields = ["id", "created_by", "created_at", "updated_at"]
    fields = ["id", "name", "description", "created_by", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _members=Count("memberships", distinct=True),
                _entities=Count("entities", distinct=True),
            )
            # A grouped query drops the model's default ordering: restate it (autocomplete pages through it).
            .order_by("name", "id")
        )

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj) -> int:
        return obj._members

    @admin.display(description="entities", ordering="_entities")
    def entity_count(self, obj) -> int:
        return obj._entities

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class EntityAdminForm(forms.ModelForm):
    fields = PrettyJSONField(
        required=False,
        help_text='A list of {"name", "type", "required", "options"}. Types: ' + ", ".join(field_types.names()) + ".",
    )

    class Meta:
        model = Entity
        fields = ["workspace", "name", "slug", "description", "fields", "status_field"]

    def clean_fields(self):
        value = self.cleaned_data.get("fields")
        if value is None:
            value = []
        cleaned, errors = validate_field_specs(value)
        if errors:
            raise ValidationError([f"{key}: {msg}" for key, messages in errors.items() for msg in messages])
        return cleaned

    def clean(self):
        cleaned = super().clean()
        fields = cleaned.get("fields")
        status_field = cleaned.get("status_field") or "status"
        if fields is None:
            return cleaned
        try:
            services.validated_fields(fields, status_field)
        except FieldSchemaInvalid as exc:
            self.add_error("status_field", exc.messages(keyed=False))
            return cleaned
        if self.instance.pk is not None and fields != self.instance.fields:
            # Checked here too so the form shows why a schema change is refused; saving re-checks.
            original = Entity.objects.get(pk=self.instance.pk)
            try:
                services.entity_fields_check(entity=original, new_fields=fields)
            except SchemaConflict as exc:
                self.add_error("fields", exc.message)
        return cleaned


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    form = EntityAdminForm
    list_display = ["name", "workspace", "slug", "field_count", "status_field", "record_count", "updated_at"]
    list_select_related = ["workspace"]
    list_filter = ["workspace"]
    search_fields = ["name", "slug", "workspace__name"]
    autocomplete_fields = ["workspace"]
    readonly_fields = ["id", "created_at", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_records=Count("records"))

    @admin.display(description="fields")
    def field_count(self, obj) -> int:
        return len(obj.fields or [])

    @admin.display(description="records", ordering="_records")
    def record_count(self, obj) -> int:
        return obj._records

    def save_model(self, request, obj, form, change):
        if change and "fields" in form.changed_data:
            fields = obj.fields
            obj.fields = Entity.objects.only("fields").get(pk=obj.pk).fields
            # Converts stored values to the new types (and re-checks them) in the same transaction.
            services.entity_update(entity=obj, fields=fields, status_field=obj.status_field)
        else:
            obj.status_field = obj.status_field or "status"
            super().save_model(request, obj, form, change)
