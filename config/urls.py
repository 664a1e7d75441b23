from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from automations.api.urls import rule_router
from config.api import json_error_view
from records.api.urls import entity_router, workspace_router
from workspaces.api.urls import nested_urlpatterns
from workspaces.api.urls import urlpatterns as workspace_urls

WS = "workspaces/<uuid:workspace_pk>/"

api_v1 = [
    *workspace_urls,
    path(WS, include(nested_urlpatterns)),
    path(WS, include(workspace_router.urls)),
    path(WS, include(rule_router.urls)),
    path(WS + "entities/<uuid:entity_pk>/", include(entity_router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api-auth/", include("rest_framework.urls")),
]

handler404 = "config.urls.not_found"
handler500 = "config.urls.server_error"


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error_view(404, "Not found.")(request)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_error_view(500, "Internal server error.")(request)
    from django.views.defaults import server_error as default

    return default(request)
