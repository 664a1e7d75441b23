from rest_framework.routers import SimpleRouter

from . import views

rule_router = SimpleRouter()
rule_router.trailing_slash = "/?"
rule_router.register("automations", views.AutomationRuleViewSet, basename="automation")
