"""Thin receivers: record signals -> dispatcher. No domain logic here."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from records.models import Record
from records.signals import records_bulk_created

from . import dispatcher


@receiver(post_save, sender=Record, dispatch_uid="automations_record_saved")
def on_record_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    dispatcher.record_changed(instance, created=created, actor=getattr(instance, "actor", None))


@receiver(post_delete, sender=Record, dispatch_uid="automations_record_deleted")
def on_record_deleted(sender, instance, **kwargs):
    dispatcher.record_deleted(instance, actor=getattr(instance, "actor", None))


@receiver(records_bulk_created, dispatch_uid="automations_records_bulk_created")
def on_records_bulk_created(sender, records, actor=None, **kwargs):
    dispatcher.records_created(records, actor=actor)
