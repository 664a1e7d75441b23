"""Signals the workspaces app sends and documents. Their receivers live in the apps that build on
workspaces (records, automations); workspaces imports none of them.

``entity_fields_changing(sender=Entity, entity=Entity, new_fields=[...], apply=bool)``
    Sent by ``workspaces.services.entity_update`` inside its transaction, before an entity's new field
    schema is saved (``apply=True``), and by ``entity_fields_check`` to only ask (``apply=False``).
    ``entity`` still holds the old schema; ``new_fields`` is the validated new one. A receiver holding
    data shaped by the schema checks it against ``new_fields`` and raises
    ``workspaces.exceptions.SchemaConflict`` when it does not fit (nothing is saved then); with
    ``apply=True`` it also converts its data. The records app converts stored record values.
"""

from django.dispatch import Signal

entity_fields_changing = Signal()
