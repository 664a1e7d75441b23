"""API authentication (kept apart from config.api: DRF imports it while its own views load)."""

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


class TokenOrBearerAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` or ``Authorization: Bearer <key>``."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        parts = header.split()
        if not parts or parts[0].lower() not in ("token", "bearer"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected '<scheme> <key>'.")
        return self.authenticate_credentials(parts[1])

    def authenticate_header(self, request):
        return "Token"
