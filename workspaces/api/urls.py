from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.trailing_slash = "/?"  # both /workspaces and /workspaces/ (the seed shows no slash)
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")

nested = SimpleRouter()
nested.trailing_slash = "/?"
nested.register("members", views.MembershipViewSet, basename="member")
nested.register("entities", views.EntityViewSet, basename="entity")

urlpatterns = [
    path("auth/register/", views.register, name="auth-register"),
    path("auth/token/", views.obtain_token, name="auth-token"),
    path("auth/me/", views.me, name="auth-me"),
    *router.urls,
]
nested_urlpatterns = nested.urls
