"""Celery tasks of rendering: thumbnails on store, pre-transcoding.

Every task takes ids, never model instances, and is idempotent: it looks at what
already exists and does only what is missing, so a redelivery (``acks_late`` with
``reject_on_worker_lost``: a worker killed mid-task hands the message back) costs a
lookup. Only storage outages (``StorageUnavailable``) are retried, with exponential
backoff; bad pixel data is logged and dropped, since retrying cannot fix it. Each task
logs one line with the UIDs and its timings.
"""

from __future__ import annotations

import io
import logging
import time

from celery import shared_task

from archive import storage
from archive.storage import StorageUnavailable
from archive.tasks import derived_prefix
from rendering import thumbnails
from rendering.images import Viewport
from rendering.pixels import RenderError

logger = logging.getLogger(__name__)

TASK_OPTIONS = {
    "autoretry_for": (StorageUnavailable,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
}


@shared_task(name="rendering.make_thumbnails", **TASK_OPTIONS)
def make_thumbnails(instance_id: int) -> str:
    """Store the default thumbnail (128x128 JPEG of the representative frame) of an instance.

    Returns what happened (``made``, ``present``, ``gone``, ``undecodable``) for logs and
    tests. Thumbnails of replaced versions of the instance are removed.
    """
    started = time.perf_counter()
    source = thumbnails.source_by_pk(instance_id)
    if source is None:
        logger.info("rendering.make_thumbnails: instance %s gone or without pixel data", instance_id)
        return "gone"
    frame = source.representative_frame
    viewport = Viewport(thumbnails.DEFAULT_SIZE, thumbnails.DEFAULT_SIZE)
    key = thumbnails.thumbnail_key(source, frame, viewport.width, viewport.height, "image/jpeg")
    outcome = "present"
    render_ms = store_ms = 0.0
    if not storage.exists(key):
        try:
            data = thumbnails.make(source, frame, viewport, "image/jpeg")
        except RenderError as exc:
            logger.warning(
                "rendering.make_thumbnails: study %s series %s instance %s cannot be rendered: %s",
                source.study_uid,
                source.series_uid,
                source.instance_uid,
                exc,
            )
            return "undecodable"
        render_ms = (time.perf_counter() - started) * 1000
        storage.put(key, io.BytesIO(data), size=len(data))
        store_ms = (time.perf_counter() - started) * 1000 - render_ms
        outcome = "made"
    removed = thumbnails.remove_other_versions(source)
    logger.info(
        "rendering.make_thumbnails: %s study %s series %s instance %s frame %d%s "
        "(render %.1f ms, store %.1f ms, total %.1f ms)",
        outcome,
        source.study_uid,
        source.series_uid,
        source.instance_uid,
        frame,
        f", {removed} stale removed" if removed else "",
        render_ms,
        store_ms,
        (time.perf_counter() - started) * 1000,
    )
    return outcome


@shared_task(name="rendering.transcode_instance", **TASK_OPTIONS)
def transcode_instance(instance_id: int, transfer_syntax: str) -> str:
    """Store a transcoded copy of an instance as a derived object (``{ts}.dcm``).

    For operators who know their viewers ask for one syntax (say JPEG 2000) and want
    the work done before the first request; the copy sits under the instance's derived
    prefix, so deleting the instance removes it. Returns ``made``, ``present``, ``gone``
    or ``failed``.
    """
    from archive.blobfile import local_copy
    from archive.models import Instance
    from rendering.transcode import TranscodeError
    from rendering.transcode import transcode_instance as transcode

    started = time.perf_counter()
    row = (
        Instance.objects.filter(pk=instance_id)
        .values_list("instance_uid", "blob_key", "transfer_syntax_uid")
        .first()
    )
    if row is None:
        logger.info("rendering.transcode_instance: instance %s gone", instance_id)
        return "gone"
    instance_uid, blob_key, stored_ts = row
    if stored_ts == transfer_syntax:
        return "present"
    key = transcoded_key(blob_key, transfer_syntax)
    if storage.exists(key):
        return "present"
    try:
        with local_copy(blob_key) as source:
            result = transcode(source, transfer_syntax)
    except TranscodeError as exc:
        logger.warning(
            "rendering.transcode_instance: instance %s to %s failed: %s", instance_uid, transfer_syntax, exc
        )
        return "failed"
    with result:
        length = result.seek(0, 2)
        result.seek(0)
        storage.put(key, result, size=length)
    logger.info(
        "rendering.transcode_instance: made instance %s %s -> %s (%d bytes, %.1f ms)",
        instance_uid,
        stored_ts,
        transfer_syntax,
        length,
        (time.perf_counter() - started) * 1000,
    )
    return "made"


def transcoded_key(blob_key: str, transfer_syntax: str) -> str:
    """Where ``transcode_instance`` stores the instance in ``transfer_syntax``."""
    return f"{derived_prefix(blob_key, this_version=True)}{transfer_syntax}.dcm"


def pretranscoded(blob_key: str, transfer_syntax: str) -> str | None:
    """The key of a stored pre-transcoded copy, or None (one lookup, only for the configured syntaxes)."""
    from django.conf import settings

    if transfer_syntax not in settings.ARCHWAY_PRETRANSCODE:
        return None
    key = transcoded_key(blob_key, transfer_syntax)
    return key if storage.exists(key) else None
