from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from automations.admin_engine import engine_page
from automations.api.urls import rule_router
from automations.demo import webhook_inbox
from config.api import json_error_view
from config.landing import landing_page
from records.api.urls import entity_router, workspace_router
from workspaces.api.urls import nested_urlpatterns
from workspaces.api.urls import urlpatterns as workspace_urls
from workspaces.api.views import api_root

WS = "workspaces/<uuid:workspace_pk>/"

api_v1 = [
    path("", api_root, name="api-root"),
    *workspace_urls,
    path(WS, include(nested_urlpatterns)),
    path(WS, include(workspace_router.urls)),
    path(WS, include(rule_router.urls)),
    path(WS + "entities/<uuid:entity_pk>/", include(entity_router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # drf-spectacular's ReDoc page minus its Google Fonts links (offline; ReDoc falls back to system fonts).
    path("redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
]

# /health/live, /health/ready and /metrics are answered by config.middleware.OperationsEndpointsMiddleware
# (before host checks and HTTPS redirects: probes come by IP address over plain HTTP).
urlpatterns = [
    path("", landing_page, name="landing"),
    # The admin's Engine page (queue, runs per minute, workers, rules turned off), staff only.
    path("admin/engine/", admin.site.admin_view(engine_page), name="admin-engine"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api-auth/", include("rest_framework.urls")),
    path("demo/webhook-inbox/", webhook_inbox, name="demo-webhook-inbox"),
    # Unknown API URLs answer in the envelope even with DEBUG on (handler404 only runs with DEBUG off).
    re_path(r"^api/", csrf_exempt(json_error_view(404, "Not found.")), name="api-not-found"),
]

handler400 = "config.urls.bad_request"
handler403 = "config.urls.permission_denied"
handler404 = "config.urls.not_found"
handler500 = "config.urls.server_error"


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error_view(400, "Bad request.")(request)
    from django.views.defaults import bad_request as default

    return default(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error_view(403, "Permission denied.")(request)
    from django.views.defaults import permission_denied as default

    return default(request, exception)


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
