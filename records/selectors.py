"""Reads of records and tasks, shared by the API, the admin and other apps (writes are in services)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError

from .exceptions import RecordNotFound
from .models import Record


def record_in_workspace(*, workspace, record_id) -> Record:
    """A record of the workspace by id (with its entity); any other id (another workspace's, malformed)
    raises ``RecordNotFound``."""
    try:
        return Record.objects.select_related("entity").get(pk=record_id, workspace=workspace)
    except (Record.DoesNotExist, ValueError, DjangoValidationError):
        raise RecordNotFound() from None
