"""API write throttling per token (rates from settings: API_THROTTLE_WRITE, API_THROTTLE_USER, ...).

Counters live in the default cache (per process with the built-in local-memory cache: with N web
processes a client can reach N times the rate; point CACHES at a shared cache to make it exact)."""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import UserRateThrottle


class WriteRateThrottle(UserRateThrottle):
    """Limits POST/PUT/PATCH/DELETE per API token (or per user for session logins)."""

    scope = "write"

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # anonymous requests are covered by the anon throttle
        token = getattr(request.auth, "key", None)
        ident = f"token:{token[:12]}" if token else f"user:{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
