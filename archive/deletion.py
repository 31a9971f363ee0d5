"""Delete studies, series and instances (the conformance statement's nonstandard Delete).

Each delete is one transaction that

1. locks the study row (as ingest does, so a concurrent store into the study waits),
2. reads the affected instances' UIDs and blob keys (not their metadata),
3. records a change feed ``delete`` entry per instance (``archive.changefeed``),
4. removes the rows: a whole study or series by bulk ``DELETE``s (instances, then series,
   then the study's aggregates recomputed once — which also removes the study and its
   patient when nothing is left); a single instance through ``indexing.detach_instance``,
5. and, on commit, enqueues ``archive.tasks.delete_blobs`` for the blobs, at most
   ``BLOB_BATCH`` keys per task.

The blobs go only after the commit: a rollback must not lose data. A crash (or a broker
outage) between the commit and the blob deletion leaves orphan blobs under ``dicom/``
without an Instance row, which ``manage.py sweep_orphans`` removes; the task itself
retries transient storage failures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.db import transaction

from archive import changefeed
from archive.indexing import detach_instance, recompute_study
from archive.models import Instance, Series, Study

logger = logging.getLogger(__name__)

BLOB_BATCH = 500  # blob keys per delete_blobs task


class NothingToDelete(LookupError):
    """The study, series or instance named does not exist (where the path puts it)."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a delete removed: the instances and the blobs queued for deletion."""

    instance_uids: tuple[str, ...]
    blob_keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.instance_uids)


@dataclass(frozen=True, slots=True)
class _Row:
    instance_uid: str
    series_uid: str
    blob_key: str
    version: int
    original_blob_key: str = ""  # kept from before an attribute correction; deleted too


_ROW_FIELDS = ("instance_uid", "series__series_uid", "blob_key", "version", "original_blob_key")


def delete_study(study_uid: str) -> Deleted:
    missing = f"Study {study_uid} not found."
    with transaction.atomic():
        study = _locked_study(study_uid, missing)
        instances = Instance.objects.filter(study_id=study.pk)
        rows = _rows(instances, missing)
        _record(study_uid, rows)
        instances.delete()
        Series.objects.filter(study_id=study.pk).delete()
        recompute_study(study.pk)  # no instances left: removes the study (and an empty patient)
        return _after_commit(rows)


def delete_series(study_uid: str, series_uid: str) -> Deleted:
    missing = f"Series {series_uid} not found in study {study_uid}."
    with transaction.atomic():
        study = _locked_study(study_uid, missing)
        series = Series.objects.select_for_update().filter(study_id=study.pk, series_uid=series_uid).first()
        if series is None:
            raise NothingToDelete(missing)
        instances = Instance.objects.filter(series_id=series.pk)
        rows = _rows(instances, missing)
        _record(study_uid, rows)
        instances.delete()
        series.delete()
        recompute_study(study.pk)
        return _after_commit(rows)


def delete_instance(study_uid: str, series_uid: str, instance_uid: str) -> Deleted:
    missing = f"Instance {instance_uid} not found in series {series_uid} of study {study_uid}."
    with transaction.atomic():
        study = _locked_study(study_uid, missing)
        series = Series.objects.select_for_update().filter(study_id=study.pk, series_uid=series_uid).first()
        instance = None
        if series is not None:
            instance = (
                Instance.objects.select_for_update()
                .filter(series_id=series.pk, instance_uid=instance_uid)
                .defer("metadata", "frame_table")
                .first()
            )
        if instance is None:
            raise NothingToDelete(missing)
        rows = [
            _Row(
                instance.instance_uid,
                series_uid,
                instance.blob_key,
                instance.version,
                instance.original_blob_key,
            )
        ]
        _record(study_uid, rows)
        detach_instance(instance)  # series/study aggregates; empty series/study/patient removed
        return _after_commit(rows)


# --- helpers ---------------------------------------------------------------------------------


def _locked_study(study_uid: str, missing: str) -> Study:
    study = Study.objects.select_for_update().filter(study_uid=study_uid).only("pk", "patient_id").first()
    if study is None:
        raise NothingToDelete(missing)
    return study


def _rows(instances, missing: str) -> list[_Row]:
    rows = [_Row(*values) for values in instances.order_by("pk").values_list(*_ROW_FIELDS)]
    if not rows:
        # A study/series row without instances should not exist; treat it as absent.
        raise NothingToDelete(missing)
    return rows


def _record(study_uid: str, rows: Sequence[_Row]) -> None:
    changefeed.record(
        changefeed.Action.DELETE,
        [changefeed.Change(study_uid, row.series_uid, row.instance_uid, row.version) for row in rows],
    )


def _after_commit(rows: Sequence[_Row]) -> Deleted:
    """Queue the blob deletions for after the commit, ``BLOB_BATCH`` keys per task."""
    for start in range(0, len(rows), BLOB_BATCH):
        batch = rows[start : start + BLOB_BATCH]
        keys = [row.blob_key for row in batch] + [
            row.original_blob_key for row in batch if row.original_blob_key
        ]
        uids = [row.instance_uid for row in batch]
        # robust: the rows are gone whatever happens here; a failed enqueue (broker down)
        # only leaves orphans for sweep_orphans, and must not turn the delete into a 500.
        transaction.on_commit(partial(_enqueue, keys, uids), robust=True)
    logger.info("deleting %d instance(s); their blobs go after the commit", len(rows))
    return Deleted(
        instance_uids=tuple(row.instance_uid for row in rows),
        blob_keys=tuple(row.blob_key for row in rows),
    )


def _enqueue(keys: list[str], instance_uids: list[str]) -> None:
    from archive.tasks import delete_blobs

    delete_blobs.delay(keys, instance_uids)
