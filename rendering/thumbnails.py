"""Thumbnails (PS3.18 Supplement 203): representative images, derived-object keys, the cache.

* **Representative frame** of an instance: the middle frame of a multi-frame instance
  (``(n + 1) // 2``, frame 1 of a single frame), the middle of the acquisition, where
  the anatomy is; an instance's thumbnail and a series' both use it.
* **Representative instance** of a series: the middle one of its instances with pixel
  data in Instance Number order (the middle slice of a CT/MR stack); of a study: the
  representative instance of its series with the most images (ties: the lowest Series
  Number, then the oldest), so a localizer or a dose report never represents a study.
* **Derived objects**: a thumbnail is stored under the instance's derived prefix
  (``archive.tasks.derived_prefix``: ``derived/{study}/{series}/{instance}/{version}/``)
  as ``thumbnail-{frame}-{w}x{h}.{ext}``. Only the sizes in ``CACHED_SIZES`` (square
  viewports without a source region) are stored, so the cache cannot grow without bound;
  other viewports are rendered on each request.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q

from archive import storage
from archive.models import Instance, Series, Study
from archive.tasks import derived_prefix
from rendering.images import RenderParams, Viewport, render

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 128
CACHED_SIZES = frozenset({64, 128, 256, 512})
THUMBNAIL_QUALITY = 90  # JPEG thumbnails: small and still sharp
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}


@dataclass(frozen=True, slots=True)
class Source:
    """The instance a thumbnail is made from (index values only, no ORM object)."""

    pk: int
    study_uid: str
    series_uid: str
    instance_uid: str
    blob_key: str
    size: int
    version: int
    number_of_frames: int

    @property
    def representative_frame(self) -> int:
        """1-based: the middle frame."""
        return max(1, (self.number_of_frames + 1) // 2)


_FIELDS = (
    "pk",
    "study__study_uid",
    "series__series_uid",
    "instance_uid",
    "blob_key",
    "size_bytes",
    "version",
    "number_of_frames",
)


def _images() -> Any:
    return Instance.objects.filter(number_of_frames__gt=0)


def source_by_pk(pk: int) -> Source | None:
    values = _images().filter(pk=pk).values_list(*_FIELDS).first()
    return Source(*values) if values else None


@functools.cache
def _instance_sql(vendor: str) -> str:
    """The one-instance lookup as plain SQL, built once from the models' metadata.

    Every thumbnail and rendered-frame request starts here; building the equivalent ORM
    query cost more CPU than running it (measured: ~1 ms of a 5 ms warm thumbnail).
    """
    q = connection.ops.quote_name
    instance, series, study = Instance._meta, Series._meta, Study._meta

    def col(meta: Any, name: str) -> str:
        return q(meta.get_field(name).column)

    columns = ", ".join(
        [f"i.{q(instance.pk.column)}", f"st.{col(study, 'study_uid')}", f"se.{col(series, 'series_uid')}"]
        + [f"i.{col(instance, name)}" for name in _FIELDS[3:]]
    )
    return (
        f"SELECT {columns} FROM {q(instance.db_table)} i"
        f" JOIN {q(series.db_table)} se ON se.{q(series.pk.column)} = i.{col(instance, 'series')}"
        f" JOIN {q(study.db_table)} st ON st.{q(study.pk.column)} = i.{col(instance, 'study')}"
        f" WHERE i.{col(instance, 'instance_uid')} = %s AND se.{col(series, 'series_uid')} = %s"
        f" AND st.{col(study, 'study_uid')} = %s AND i.{col(instance, 'number_of_frames')} > 0"
    )


def instance_source(study_uid: str, series_uid: str, instance_uid: str) -> Source | None:
    with connection.cursor() as cursor:
        cursor.execute(_instance_sql(connection.vendor), [instance_uid, series_uid, study_uid])
        values = cursor.fetchone()
    return Source(*values) if values else None


def series_source(study_uid: str, series_uid: str) -> Source | None:
    """The middle image of the series (Instance Number order), or None without images."""
    images = _images().filter(study__study_uid=study_uid, series__series_uid=series_uid)
    return _middle(images)


def study_source(study_uid: str) -> Source | None:
    """The representative image of the study's series with the most images."""
    series = (
        Series.objects.filter(study__study_uid=study_uid)
        .annotate(images=Count("instances", filter=Q(instances__number_of_frames__gt=0)))
        .filter(images__gt=0)
        .order_by("-images", "series_number", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    if series is None:
        return None
    return _middle(_images().filter(series_id=series))


def _middle(images: Any) -> Source | None:
    count = images.count()
    if not count:
        return None
    # Nulls last: instances without an Instance Number sort after the numbered ones.
    ordered = images.order_by(F("instance_number").asc(nulls_last=True), "pk").values_list(*_FIELDS)
    return Source(*ordered[(count - 1) // 2])


# --- the derived-object cache -------------------------------------------------------------


def thumbnail_key(source: Source, frame_number: int, width: int, height: int, media_type: str) -> str:
    prefix = derived_prefix(source.blob_key, this_version=True)
    return f"{prefix}thumbnail-{frame_number}-{width}x{height}.{EXTENSIONS[media_type]}"


def cacheable(viewport: Viewport) -> bool:
    return (
        viewport.width == viewport.height
        and viewport.width in CACHED_SIZES
        and (viewport.sx, viewport.sy, viewport.sw, viewport.sh) == (0, 0, None, None)
    )


def thumbnail_params(viewport: Viewport, media_type: str) -> RenderParams:
    return RenderParams(media_type=media_type, quality=THUMBNAIL_QUALITY, viewport=viewport)


def read_cached(key: str) -> bytes | None:
    """The stored thumbnail, or None when it is not there (yet)."""
    try:
        with storage.open_stream(key) as stream:
            return b"".join(stream)
    except storage.BlobNotFound:
        return None


def make(source: Source, frame_number: int, viewport: Viewport, media_type: str) -> bytes:
    """Render a thumbnail (no cache involved)."""
    return render(source.blob_key, frame_number - 1, thumbnail_params(viewport, media_type), size=source.size)


def get_or_make(source: Source, frame_number: int, viewport: Viewport, media_type: str) -> tuple[bytes, bool]:
    """``(image bytes, came from storage)``; a missing cacheable thumbnail is rendered and stored.

    A failed write to the cache is logged, not raised: the request still gets its image.
    """
    if not cacheable(viewport):
        return make(source, frame_number, viewport, media_type), False
    key = thumbnail_key(source, frame_number, viewport.width, viewport.height, media_type)
    cached = read_cached(key)
    if cached is not None:
        return cached, True
    data = make(source, frame_number, viewport, media_type)
    try:
        storage.put(key, io.BytesIO(data), size=len(data))
    except storage.StorageError:
        logger.warning("could not store thumbnail %s", key, exc_info=True)
    return data, False


def remove_other_versions(source: Source) -> int:
    """Delete derived objects of earlier (replaced) versions of the instance."""
    current = derived_prefix(source.blob_key, this_version=True)
    removed = 0
    for blob in storage.iter_blobs(derived_prefix(source.blob_key)):
        if not blob.key.startswith(current):
            storage.delete(blob.key)
            removed += 1
    return removed
