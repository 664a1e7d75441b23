"""What ``workspaces.services`` raises (domain errors; ``config.api`` maps them to HTTP once)."""

from config.errors import Conflict, InvalidInput, NotAllowed


class UserNotFound(InvalidInput):
    """No (single) existing user matches the username or email given for a new member."""


class AlreadyMember(Conflict):
    """The user is a member of the workspace already."""


class LastOwner(Conflict):
    """The change would leave the workspace without an owner."""

    default_message = "A workspace must keep at least one owner."


class MemberManagementNotAllowed(NotAllowed):
    """The actor's role may not manage this member or role."""


class FieldSchemaInvalid(InvalidInput):
    """An entity's field schema (or its status field) is invalid; errors name the index and key."""


class SchemaConflict(Conflict):
    """Existing records do not fit a new field schema (raised by the records app's receiver of
    ``workspaces.signals.entity_fields_changing``)."""
