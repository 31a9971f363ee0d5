"""``manage.py sweep_orphans``: reconcile blob storage with the index after crashes.

Ingest writes the blob before the index row (see ``archive.ingest``), so a process that
dies in between leaves an *orphan blob*; a failed post-commit delete of a replaced blob
leaves an orphan too. (Its in-flight claim is a lock that dies with the process:
``archive.claims``; nothing else is left behind.) Nothing in the request path cleans
these up, so operators run this periodically (cron, a Celery beat task). It:

a. deletes blobs under ``dicom/`` that no Instance references, once they are older than
   the grace period (younger ones may belong to a store still in flight and are
   reported as "young, kept"). The grace period must be longer than the slowest blob
   upload: S3 dates a multipart upload's object from when the upload *began*;
b. removes temporary files of blob writes that never finished (filesystem backend);
c. deletes derived objects (thumbnails, pre-transcoded copies under ``derived/``) whose
   instance version no longer exists (deleted, or replaced by a PUT), once older than
   the grace period; they can always be made again;
d. reports Instance rows whose blob is missing. Index rows are never deleted
   automatically: a missing blob is data loss an operator has to look at (restore the
   blob from backup, or delete the instance through DICOMweb).

The grace period is ``settings.ARCHWAY_ORPHAN_GRACE_SECONDS`` (``--grace`` overrides it).
``--dry-run`` reports without deleting. Memory and query count are bounded: blobs are
listed as a stream and looked up ~1,000 keys per query; instances are read in primary-key
batches. Checking (c) costs one ``stat`` (filesystem) or ``HeadObject`` (S3, run on a few
threads) per instance.
"""

from __future__ import annotations

import logging
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from archive import storage
from archive.models import Instance
from archive.tasks import DERIVED_PREFIX, parse_derived_key

logger = logging.getLogger(__name__)

BLOB_PREFIX = "dicom/"
BATCH_SIZE = 1000
EXISTS_THREADS = 8

T = TypeVar("T")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _batch_size() -> int:
    """~1,000 keys per ``IN (...)`` query, within the backend's parameter limit (999 on SQLite)."""
    limit = connection.features.max_query_params
    return min(BATCH_SIZE, limit) if limit else BATCH_SIZE


def _describe(blob: storage.BlobInfo) -> str:
    return f"{blob.key} ({blob.size} bytes, modified {blob.modified.isoformat(timespec='seconds')})"


def _seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise ArgumentTypeError(f"expected a whole number of seconds >= 0, not {value!r}")
    return seconds


@dataclass
class Report:
    orphans_deleted: int = 0
    orphan_bytes: int = 0
    orphans_young: int = 0
    blobs_checked: int = 0
    instances_checked: int = 0
    instances_missing_blob: int = 0
    derived_checked: int = 0
    derived_deleted: int = 0


class Command(BaseCommand):
    help = (
        "Delete orphan blobs older than the grace period, and "
        "report instances whose blob is missing (never deleting index rows)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--grace",
            type=_seconds,
            metavar="SECONDS",
            help="Only touch orphans older than this "
            "(default: ARCHWAY_ORPHAN_GRACE_SECONDS, currently %(default)s).",
            default=settings.ARCHWAY_ORPHAN_GRACE_SECONDS,
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        grace: int = options["grace"]
        self.dry_run: bool = options["dry_run"]
        self.report = Report()
        cutoff = timezone.now() - timedelta(seconds=grace)
        mode = " (dry run: nothing is deleted)" if self.dry_run else ""
        self.stdout.write(f"sweep_orphans: grace period {grace} s, cutoff {cutoff.isoformat()}{mode}")
        try:
            partials = storage.remove_stale_partials(cutoff, dry_run=self.dry_run)
            if partials:
                verb = "would delete" if self.dry_run else "deleted"
                self.stdout.write(f"{verb} {partials} unfinished blob write(s) (temporary files)")
            self._sweep_blobs(cutoff)
            self._sweep_derived(cutoff)
            self._check_instances()
        except storage.StorageError as exc:
            raise CommandError(f"blob storage failed, sweep aborted: {exc}") from exc
        self._summary()

    # --- (a) orphan blobs ------------------------------------------------------------------
    def _sweep_blobs(self, cutoff: datetime) -> None:
        for batch in _batches(storage.iter_blobs(BLOB_PREFIX), _batch_size()):
            self.report.blobs_checked += len(batch)
            keys = [blob.key for blob in batch]
            indexed = set(Instance.objects.filter(blob_key__in=keys).values_list("blob_key", flat=True))
            # Versions kept from before an attribute correction (archive.corrections).
            indexed.update(
                Instance.objects.filter(original_blob_key__in=keys).values_list(
                    "original_blob_key", flat=True
                )
            )
            for blob in batch:
                if blob.key in indexed:
                    continue
                if blob.modified > cutoff:
                    self.report.orphans_young += 1
                    self.stdout.write(f"orphan blob {_describe(blob)}: young, kept")
                    continue
                self.report.orphans_deleted += 1
                self.report.orphan_bytes += blob.size
                if self.dry_run:
                    self.stdout.write(f"orphan blob {_describe(blob)}: would delete")
                    continue
                storage.delete(blob.key)
                logger.info(
                    "deleted orphan blob %s (%d bytes, modified %s)",
                    blob.key,
                    blob.size,
                    blob.modified.isoformat(),
                )
                self.stdout.write(f"orphan blob {_describe(blob)}: deleted")

    # --- (c) derived objects of instances that are gone -----------------------------------
    def _sweep_derived(self, cutoff: datetime) -> None:
        for batch in _batches(storage.iter_blobs(DERIVED_PREFIX), _batch_size()):
            self.report.derived_checked += len(batch)
            parsed = {blob.key: parse_derived_key(blob.key) for blob in batch}
            uids = {p[0] for p in parsed.values() if p is not None}
            current = set(
                Instance.objects.filter(instance_uid__in=uids).values_list("instance_uid", "version")
            )
            for blob in batch:
                made_from = parsed[blob.key]
                if made_from is not None and made_from in current:
                    continue
                if blob.modified > cutoff:
                    continue  # may belong to a store that is committing right now
                self.report.derived_deleted += 1
                if self.dry_run:
                    self.stdout.write(f"derived object {_describe(blob)}: would delete")
                    continue
                storage.delete(blob.key)
                self.stdout.write(f"derived object {_describe(blob)}: deleted")

    # --- (d) instances without a blob ------------------------------------------------------
    def _check_instances(self) -> None:
        rows = Instance.objects.order_by("pk").values_list(
            "pk", "instance_uid", "study__study_uid", "blob_key"
        )
        last_pk = 0
        with ThreadPoolExecutor(max_workers=EXISTS_THREADS, thread_name_prefix="sweep") as pool:
            while batch := list(rows.filter(pk__gt=last_pk)[: _batch_size()]):
                last_pk = batch[-1][0]
                self.report.instances_checked += len(batch)
                present = list(pool.map(storage.exists, (row[3] for row in batch)))
                suspects = [row for row, ok in zip(batch, present, strict=True) if not ok]
                if suspects:
                    self._report_missing(suspects)

    def _report_missing(self, suspects: list[tuple[int, str, str, str]]) -> None:
        # Re-read: a concurrent replace (new blob key) or delete is not a missing blob.
        current = dict(
            Instance.objects.filter(pk__in=[row[0] for row in suspects]).values_list("pk", "blob_key")
        )
        for pk, instance_uid, study_uid, key in suspects:
            if current.get(pk) != key:
                continue
            self.report.instances_missing_blob += 1
            logger.warning("instance %s (study %s) has no blob at %s", instance_uid, study_uid, key)
            self.stdout.write(
                f"MISSING BLOB: instance {instance_uid} study {study_uid} key {key} (index row kept)"
            )

    def _summary(self) -> None:
        r = self.report
        verb = "would delete" if self.dry_run else "deleted"
        lines = [
            f"sweep_orphans summary{' (dry run)' if self.dry_run else ''}:",
            f"  blobs checked                {r.blobs_checked}",
            f"  orphan blobs {verb:<15} {r.orphans_deleted} ({r.orphan_bytes} bytes)",
            f"  orphan blobs young, kept     {r.orphans_young}",
            f"  derived objects checked      {r.derived_checked}",
            f"  derived objects {verb:<12} {r.derived_deleted}",
            f"  instances checked            {r.instances_checked}",
            f"  instances with missing blob  {r.instances_missing_blob}",
        ]
        self.stdout.write("\n".join(lines))
