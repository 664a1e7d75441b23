"""Thin receivers of other apps' documented signals. No domain logic here."""

from django.dispatch import receiver

from workspaces.signals import entity_fields_changing

from . import services


@receiver(entity_fields_changing, dispatch_uid="records_entity_fields_changing")
def on_entity_fields_changing(sender, entity, new_fields, apply, **kwargs):
    services.records_fit_fields(entity=entity, new_fields=new_fields, apply=apply)
