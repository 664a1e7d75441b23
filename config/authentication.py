"""API authentication (kept apart from config.api: DRF imports it while its own views load)."""

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


@dataclass(frozen=True)
class ApiToken:
    """``request.auth`` of a token request: the key and its user (what DRF's Token offers readers)."""

    key: str
    user: object


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

    def authenticate_credentials(self, key):
        """DRF's check (the token's user, active), with the lookup as one fixed statement: every API request
        pays it. A revoked token is gone from the table, so the next request fails at once."""
        # Imported here, not at the top: DRF imports this module while its settings load, before the apps
        # (and so the models the statement reads) are ready.
        from workspaces.sql import token_user

        user = token_user(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, ApiToken(key=key, user=user)

    def authenticate_header(self, request):
        return "Token"
