"""Signals the records app sends and documents (receivers live elsewhere; records imports none).

``records_bulk_created(sender=Record, records=[...], actor=user|None)``: sent inside the transaction
of ``records.services.record_bulk_create``, after the rows are inserted (Django's ``post_save`` does
not fire for ``bulk_create``).
"""

from django.dispatch import Signal

records_bulk_created = Signal()
