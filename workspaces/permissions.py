"""Access checks, written once: who may see a workspace (members, else 404) and who may change what."""

from __future__ import annotations

from rest_framework import exceptions

from config.api import EnvelopeModelViewSet

from .models import ROLE_RANK, Membership, Role, Workspace
from .selectors import membership_of


def membership_or_404(user, workspace_id) -> Membership:
    """The user's membership of the workspace; a missing workspace and a non-member look the same (404)."""
    if not user or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    membership = membership_of(user, workspace_id)
    if membership is None:
        raise exceptions.NotFound("Workspace not found.")
    return membership


def require_role(membership: Membership, minimum: str, what: str = "do this") -> None:
    if ROLE_RANK[membership.role] < ROLE_RANK[minimum]:
        raise exceptions.PermissionDenied(f"You need the {minimum} role or higher to {what}.")


class WorkspaceScopedViewSet(EnvelopeModelViewSet):
    """A viewset nested under ``/workspaces/{workspace_pk}/``.

    Any member reads; writes need ``write_role`` (per action override in ``action_roles``)."""

    read_role = Role.VIEWER
    write_role = Role.MEMBER
    action_roles: dict[str, str] = {}
    membership: Membership

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.membership = self.load_membership(request, kwargs)
        self.workspace: Workspace = self.membership.workspace
        action = self.action or ""
        if action in self.action_roles:
            needed = self.action_roles[action]
        elif request.method in ("GET", "HEAD", "OPTIONS"):
            needed = self.read_role
        else:
            needed = self.write_role
        require_role(self.membership, needed, f"{action.replace('_', ' ') or 'do'} {self.envelope_plural}")

    def load_membership(self, request, kwargs) -> Membership:
        """The requesting user's membership of the URL's workspace (404 for non-members). Viewsets nested
        deeper may load their parent object in the same query."""
        return membership_or_404(request.user, kwargs.get("workspace_pk"))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["workspace"] = getattr(self, "workspace", None)
        context["membership"] = getattr(self, "membership", None)
        return context
