from rest_framework.routers import SimpleRouter

from . import views

workspace_router = SimpleRouter()
workspace_router.trailing_slash = "/?"
workspace_router.register("tasks", views.TaskViewSet, basename="task")

entity_router = SimpleRouter()
entity_router.trailing_slash = "/?"
entity_router.register("records", views.RecordViewSet, basename="record")
