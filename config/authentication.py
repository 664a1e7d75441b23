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
        key = parts[1]
        # Keys are short hex strings; anything else cannot match and must not reach the database as-is.
        if len(key) > 64 or not key.isascii() or not key.isalnum():
            raise exceptions.AuthenticationFailed("Invalid token.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request):
        return "Token"
