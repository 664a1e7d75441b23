"""The action type registry: one class per action, keyed by the ``action_type`` stored on a rule."""

from config.registry import Registry

from .base import ActionType
from .call_webhook import CallWebhook
from .create_task import CreateTask
from .send_email import SendEmail
from .update_field import UpdateField

action_types = Registry[ActionType]("action type")
action_types.register(SendEmail())
action_types.register(CallWebhook())
action_types.register(UpdateField())
action_types.register(CreateTask())

__all__ = ["ActionType", "action_types"]
