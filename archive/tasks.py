"""Celery tasks of the archive.

Tasks are enqueued with ``transaction.on_commit`` by the code that changes the index, so
they only ever see committed state. In the embedded profile (no broker) Celery runs them
in-process, eagerly, when the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import shared_task

from archive import storage
from archive.storage import StorageUnavailable

logger = logging.getLogger(__name__)

DERIVED_PREFIX = "derived/"


def derived_prefix(instance_uid: str) -> str:
    """Where objects derived from an instance (thumbnails, renderings) are stored."""
    return f"{DERIVED_PREFIX}{instance_uid}/"


@shared_task(
    name="archive.delete_blobs",
    autoretry_for=(StorageUnavailable,),
    retry_backoff=5,
    max_retries=8,
    acks_late=True,
    ignore_result=True,
)
def delete_blobs(keys: Sequence[str], instance_uids: Sequence[str] = ()) -> int:
    """Delete the blobs of deleted instances and everything derived from them.

    Idempotent: a key that is already gone is fine, so a retry (after a transient
    storage failure part-way through) simply starts again. If every retry fails the
    blobs are orphans, which ``manage.py sweep_orphans`` removes. Returns the number of
    blobs deleted (derived ones included) for logs and tests.
    """
    deleted = 0
    for key in keys:
        storage.delete(key)
        deleted += 1
    for instance_uid in instance_uids:
        for blob in storage.iter_blobs(derived_prefix(instance_uid)):
            storage.delete(blob.key)
            deleted += 1
    logger.info("deleted %d blob(s) of %d deleted instance(s)", deleted, len(instance_uids) or len(keys))
    return deleted
