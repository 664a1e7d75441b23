from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.reverse import reverse

from config.api import EnvelopeModelViewSet, ok
from config.throttling import AnonThrottle

from .. import selectors, services
from ..models import Entity, Membership, Role, Workspace
from ..permissions import WorkspaceScopedViewSet, membership_or_404, require_role
from .serializers import (
    EntitySerializer,
    MembershipSerializer,
    RegisterSerializer,
    TokenRequestSerializer,
    UserSerializer,
    WorkspaceSerializer,
)

User = get_user_model()

AuthResponse = inline_serializer("AuthResult", {"user": UserSerializer(), "token": serializers.CharField()})


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request):
    """Entry points of the API (the browsable API starts here)."""
    links = {
        "register": reverse("auth-register", request=request),
        "token": reverse("auth-token", request=request),
        "me": reverse("auth-me", request=request),
        "workspaces": reverse("workspace-list", request=request),
        "schema": reverse("schema", request=request),
        "docs": reverse("swagger-ui", request=request),
    }
    # Router URLs reverse without their optional trailing slash; show the canonical form.
    return ok({key: url.rstrip("/") + "/" for key, url in links.items()}, "Workspace automations API v1")


@extend_schema(request=RegisterSerializer, responses={201: AuthResponse}, tags=["auth"], auth=[])
@api_view(["POST"])
@permission_classes([AllowAny])
@throttle_classes([AnonThrottle])
def register(request):
    """Create an account (off when SIGNUP_ENABLED=false) and return its API token."""
    if not settings.SIGNUP_ENABLED:
        raise exceptions.PermissionDenied("Sign-up is disabled on this server.")
    serializer = RegisterSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = User.objects.create_user(
        username=serializer.validated_data["username"],
        email=serializer.validated_data["email"],
        password=serializer.validated_data["password"],
    )
    token = Token.objects.create(user=user)
    return ok({"user": UserSerializer(user).data, "token": token.key}, "Account created", status.HTTP_201_CREATED)


@extend_schema(request=TokenRequestSerializer, responses={200: AuthResponse}, tags=["auth"], auth=[])
@api_view(["POST"])
@permission_classes([AllowAny])
@throttle_classes([AnonThrottle])
def obtain_token(request):
    """Exchange username and password for the account's API token."""
    serializer = TokenRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = authenticate(
        request,
        username=serializer.validated_data["username"],
        password=serializer.validated_data["password"],
    )
    if user is None or not user.is_active:
        raise exceptions.AuthenticationFailed("Invalid username or password.")
    token, _ = Token.objects.get_or_create(user=user)
    return ok({"user": UserSerializer(user).data, "token": token.key}, "Token issued")


@extend_schema(responses={200: inline_serializer("MeResult", {"user": UserSerializer()})}, tags=["auth"])
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def me(request):
    """The authenticated user."""
    return ok({"user": UserSerializer(request.user).data}, "Current user")


@extend_schema(tags=["workspaces"])
class WorkspaceViewSet(EnvelopeModelViewSet):
    """Workspaces you are a member of. The creator becomes the owner; owners and admins edit,
    only owners delete."""

    serializer_class = WorkspaceSerializer
    envelope_singular = "workspace"
    envelope_plural = "workspaces"
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Workspace.objects.none()
        return selectors.workspaces_of_user(self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request and self.request.user.is_authenticated:
            context["roles"] = selectors.roles_of_user(self.request.user)
        return context

    def get_object(self):
        membership = membership_or_404(self.request.user, self.kwargs["pk"])
        if self.action in ("update", "partial_update"):
            require_role(membership, Role.ADMIN, "edit this workspace")
        elif self.action == "destroy":
            require_role(membership, Role.OWNER, "delete this workspace")
        return membership.workspace

    def perform_create(self, serializer):
        serializer.instance = services.workspace_create(
            user=self.request.user,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
        )

    def perform_update(self, serializer):
        serializer.instance = services.workspace_update(workspace=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.workspace_delete(workspace=instance)


@extend_schema(tags=["workspaces"])
class MembershipViewSet(WorkspaceScopedViewSet):
    """Members of a workspace. Add an existing user by ``username`` or ``email`` with a role;
    owners and admins manage members, only owners manage owners; a workspace keeps at least one owner.
    Any member may leave (DELETE their own membership)."""

    serializer_class = MembershipSerializer
    envelope_singular = "member"
    envelope_plural = "members"
    write_role = Role.ADMIN
    action_roles = {"destroy": Role.VIEWER}  # leaving is allowed; removing others is checked in the service
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return selectors.members_of(self.workspace)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.member_add(
            workspace=self.workspace,
            actor=self.membership,
            username=data.get("username"),
            email=data.get("email"),
            role=data["role"],
        )

    def perform_update(self, serializer):
        serializer.instance = services.member_update_role(
            membership=serializer.instance,
            actor=self.membership,
            role=serializer.validated_data.get("role", serializer.instance.role),
        )

    def update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return super().update(request, *args, **kwargs)

    def perform_destroy(self, instance):
        services.member_remove(membership=instance, actor=self.membership)


@extend_schema(tags=["entities"])
class EntityViewSet(WorkspaceScopedViewSet):
    """Entities (user-defined tables) and their field schema. Owners and admins change the schema;
    a schema change is checked against the existing records first."""

    serializer_class = EntitySerializer
    envelope_singular = "entity"
    envelope_plural = "entities"
    write_role = Role.ADMIN
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Entity.objects.none()
        return selectors.entities_of(self.workspace, with_record_counts=self.action in ("list", "retrieve"))

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.entity_create(
            workspace=self.workspace,
            name=data["name"],
            fields=data.get("fields", []),
            status_field=data.get("status_field") or "status",
            description=data.get("description", ""),
        )

    def perform_update(self, serializer):
        serializer.instance = services.entity_update(entity=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.entity_delete(entity=instance)
