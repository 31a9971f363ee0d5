"""Celery tasks of the archive.

Tasks are enqueued with ``transaction.on_commit`` by the code that changes the index, so
they only ever see committed state. In the embedded profile (no broker) Celery runs them
in-process, eagerly, when the transaction commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from celery import shared_task

from archive import storage
from archive.storage import StorageUnavailable

logger = logging.getLogger(__name__)

DERIVED_PREFIX = "derived/"
BLOB_PREFIX = "dicom/"


def derived_prefix(blob_key: str, *, this_version: bool = False) -> str:
    """Where objects derived from an instance (thumbnails, transcodes) are stored.

    The layout mirrors the instance's blob key, ``dicom/{study}/{series}/{instance}.{version}.dcm``
    → ``derived/{study}/{series}/{instance}/`` (every version) or, with ``this_version``,
    ``derived/{study}/{series}/{instance}/{version}/``; so ``derived/{study}/`` covers a
    study, a derived object names the stored version it was made from (a PUT that replaces
    the instance makes its old derived objects stale, never wrong), and the prefix is
    known from the blob key alone after the index rows are gone.

    >>> derived_prefix("dicom/1.2/1.2.3/1.2.3.4.ff.dcm", this_version=True)
    'derived/1.2/1.2.3/1.2.3.4/ff/'
    """
    parts = blob_key.split("/")
    if len(parts) != 4 or parts[0] + "/" != BLOB_PREFIX or not parts[3].endswith(".dcm"):
        raise ValueError(f"not an instance blob key: {blob_key!r}")
    instance_uid, _, version = parts[3].removesuffix(".dcm").rpartition(".")
    prefix = f"{DERIVED_PREFIX}{parts[1]}/{parts[2]}/{instance_uid}/"
    return f"{prefix}{version}/" if this_version else prefix


def parse_derived_key(key: str) -> tuple[str, int] | None:
    """``(instance_uid, version)`` a derived object was made from, or None if not one."""
    parts = key.split("/")
    if len(parts) < 6 or parts[0] + "/" != DERIVED_PREFIX:
        return None
    try:
        return parts[3], int(parts[4], 16)
    except ValueError:
        return None


@shared_task(
    name="archive.delete_blobs",
    autoretry_for=(StorageUnavailable,),
    retry_backoff=5,
    max_retries=8,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def delete_blobs(keys: Sequence[str], instance_uids: Sequence[str] = ()) -> int:
    """Delete the blobs of deleted instances and everything derived from them.

    Idempotent: a key that is already gone is fine, so a retry (after a transient
    storage failure part-way through) simply starts again. If every retry fails the
    blobs are orphans, which ``manage.py sweep_orphans`` removes. Returns the number of
    blobs deleted (derived ones included) for logs and tests.
    """
    started = time.perf_counter()
    deleted = 0
    for key in keys:
        storage.delete(key)
        deleted += 1
    for key in keys:
        try:
            prefix = derived_prefix(key)
        except ValueError:
            continue
        for blob in storage.iter_blobs(prefix):
            storage.delete(blob.key)
            deleted += 1
    logger.info(
        "archive.delete_blobs: deleted %d blob(s) of %d instance(s) [%s] in %.1f ms",
        deleted,
        len(instance_uids) or len(keys),
        ", ".join(list(instance_uids)[:3]) + (", ..." if len(instance_uids) > 3 else ""),
        (time.perf_counter() - started) * 1000,
    )
    return deleted
