"""What ``records.services`` and ``records.selectors`` raise (domain errors; ``config.api`` maps them to
HTTP once)."""

from config.errors import InvalidInput, NotFound


class RecordDataInvalid(InvalidInput):
    """Record data does not fit its entity's fields; errors are keyed ``data.<field>`` (or
    ``records.<index>.data.<field>`` for a bulk create)."""


class RecordNotFound(NotFound):
    """No such record in this workspace (another workspace's record is "not found" too)."""

    default_message = "Record not found."


class RecordQueryInvalid(InvalidInput):
    """A record or task list's query parameters are invalid (unknown field or lookup, bad value)."""
