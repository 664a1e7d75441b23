from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import StrictModelSerializer, StrictSerializer

from ..field_types import field_types
from ..models import Entity, Membership, Role, Workspace

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "date_joined"]
        read_only_fields = fields


class RegisterSerializer(StrictSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+$", max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})

    def validate_username(self, value):
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is taken.")
        return value

    def validate_email(self, value):
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("An account with this email exists.")
        return value

    def validate(self, attrs):
        try:
            password_validation.validate_password(
                attrs["password"], User(username=attrs["username"], email=attrs["email"])
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class TokenRequestSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class WorkspaceSerializer(StrictModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in this workspace.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "role", "created_at", "updated_at"]
        extra_kwargs = {"name": {"max_length": 255}, "description": {"required": False}}

    def get_role(self, obj) -> str | None:
        roles = self.context.get("roles") or {}
        return roles.get(obj.pk)


class MembershipSerializer(StrictModelSerializer):
    user = UserSerializer(read_only=True)
    username = serializers.CharField(
        write_only=True, required=False, max_length=150, help_text="Add: the existing user's username…"
    )
    email = serializers.EmailField(write_only=True, required=False, max_length=254, help_text="…or email.")
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "user", "username", "email", "role", "created_at"]
        read_only_fields = ["id", "user", "created_at"]

    def validate(self, attrs):
        if self.instance is None and not (attrs.get("username") or attrs.get("email")):
            raise serializers.ValidationError({"username": ["Give the username or the email of an existing user."]})
        return attrs


class FieldSpecSerializer(serializers.Serializer):
    """One field of an entity's schema (documentation only: ``validate_field_specs`` validates)."""

    name = serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    type = serializers.ChoiceField(choices=field_types.names())
    required = serializers.BooleanField(default=False)
    options = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="select and multi_select only"
    )
    label = serializers.CharField(required=False)
    description = serializers.CharField(required=False)


@extend_schema_field(FieldSpecSerializer(many=True))
class FieldSpecsField(serializers.JSONField):
    """The field schema as JSON; validated by ``workspaces.field_types.validate_field_specs`` in the
    service, so errors name the index and key (``fields.2.options``)."""


class EntitySerializer(StrictModelSerializer):
    fields = FieldSpecsField(
        required=False,
        help_text='List of {"name", "type", "required", "options"}; types: ' + ", ".join(field_types.names()),
    )
    status_field = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="The field whose changes fire status_changed automations (default: status).",
    )
    record_count = serializers.SerializerMethodField(help_text="How many records the entity holds.")

    class Meta:
        model = Entity
        fields = [
            "id",
            "workspace_id",
            "name",
            "slug",
            "description",
            "fields",
            "status_field",
            "record_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "workspace_id", "slug", "created_at", "updated_at", "record_count"]
        extra_kwargs = {"description": {"required": False}}

    def get_record_count(self, instance) -> int:
        # Lists and gets annotate the count in their one query; a create or update counts once.
        count = getattr(instance, "record_count", None)
        return count if count is not None else instance.records.count()
