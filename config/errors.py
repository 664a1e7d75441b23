"""Domain errors: what services raise when the domain says no, with no knowledge of HTTP.

Each app defines its own errors (``workspaces.exceptions``, ``records.exceptions``,
``automations.exceptions``) on top of the four kinds below. ``config.api`` maps a kind to its HTTP status
once (400, 404, 409, 403); the admin and the management commands show ``message`` and ``errors`` as
they are. This module imports nothing from the apps, Django or DRF, so every app can import it.
"""

from __future__ import annotations

import difflib
from typing import Any


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested errors (dicts and lists, e.g. a DRF serializer's ``errors``) -> ``{"field.sub.0": [...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item in ({}, []):
                    continue
                name = f"{prefix}.{index}" if prefix else str(index)
                for k, v in flatten_errors(item, name).items():
                    out.setdefault(k, []).extend(v)
    elif detail is not None:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


class DomainError(Exception):
    """A message for people and, optionally, errors per field (``{"action_config.url": ["..."]}``).

    ``errors`` may be given nested (``{"data": {"email": ["..."]}}``); it is stored flat, keys joined
    with dots, the shape the API answers with."""

    default_message = "The request cannot be completed."

    def __init__(self, message: str | None = None, *, errors: Any = None):
        self.errors: dict[str, list[str]] = flatten_errors(errors) if errors else {}
        self.message = message or self.default_message
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        return f"{self.message}: {'; '.join(self.messages())}"

    def messages(self, *, keyed: bool = True) -> list[str]:
        """Every message, prefixed with its field when ``keyed`` (``url: Enter a URL.``); the message
        alone when there are no field errors."""
        plain = ("", "non_field_errors")
        found = [
            f"{key}: {msg}" if keyed and key not in plain else msg for key, msgs in self.errors.items() for msg in msgs
        ]
        return found or [self.message]

    def prefixed(self, prefix: str) -> dict[str, list[str]]:
        """``errors`` with every key under ``prefix`` (``url`` -> ``action_config.url``)."""
        return {f"{prefix}.{key}": msgs for key, msgs in self.errors.items()}


class InvalidInput(DomainError):
    """The input breaks a rule of the domain (HTTP 400)."""

    default_message = "Validation failed"


class NotFound(DomainError):
    """The object does not exist, or not for this caller (HTTP 404)."""

    default_message = "Not found."


class Conflict(DomainError):
    """The input is valid but conflicts with the current state (HTTP 409)."""

    default_message = "The request conflicts with the current state."


class NotAllowed(DomainError):
    """The caller's role does not allow this (HTTP 403)."""

    default_message = "You are not allowed to do this."


def unknown_key_message(key: str, known, what: str = "field") -> str:
    """``Unknown field 'is_activ'. Did you mean 'is_active'?`` (or the list of known keys)."""
    known = sorted(str(name) for name in known)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        return f"Unknown {what} '{key}'. Did you mean '{close[0]}'?"
    return f"Unknown {what} '{key}'. Known: {', '.join(known) or '(none)'}."
