"""React to stored instances: queue thumbnail (and optional pre-transcode) work after commit.

``archive.signals.instance_stored`` is sent inside the index transaction, so the tasks
are queued with ``transaction.on_commit``: nothing is queued for a store that rolls
back, and a worker never looks for a row that is not committed yet. ``robust=True``:
a broker outage must not turn a successful store into an error (the thumbnail is then
made on the first request instead).
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from archive.signals import instance_stored


@receiver(instance_stored, dispatch_uid="rendering.queue_derived_work")
def queue_derived_work(sender, instance, replaced: bool = False, **kwargs) -> None:
    if not instance.number_of_frames:
        return  # no pixel data (SR, PDF, …): nothing to render
    if settings.ARCHWAY_THUMBNAILS_ON_STORE:
        transaction.on_commit(partial(_queue_thumbnails, instance.pk), robust=True)
    for transfer_syntax in settings.ARCHWAY_PRETRANSCODE:
        if transfer_syntax != instance.transfer_syntax_uid:
            transaction.on_commit(partial(_queue_transcode, instance.pk, transfer_syntax), robust=True)


def _queue_thumbnails(instance_id: int) -> None:
    from rendering.tasks import make_thumbnails

    make_thumbnails.delay(instance_id)


def _queue_transcode(instance_id: int, transfer_syntax: str) -> None:
    from rendering.tasks import transcode_instance

    transcode_instance.delay(instance_id, transfer_syntax)
