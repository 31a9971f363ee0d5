"""Signals archive sends so other apps can react without archive importing them.

``instance_stored`` is sent *inside* the index transaction; receivers that enqueue
work must use ``transaction.on_commit`` (or Celery's ``delay_on_commit``) so nothing
runs for an instance whose transaction rolled back.
"""

from django.dispatch import Signal

instance_stored = Signal()  # kwargs: instance (archive.models.Instance), replaced (bool)
