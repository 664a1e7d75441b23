"""Wording shared by API and admin messages."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 workspace``, ``2 workspaces``, ``2 entities`` (``plural`` defaults to ``singular + "s"``)."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"
