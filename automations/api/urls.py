from rest_framework.routers import SimpleRouter

rule_router = SimpleRouter()
rule_router.trailing_slash = "/?"
