"""``manage.py ensure_storage``: create the DICOM blob store if it does not exist.

django-storages never creates S3 buckets and a fresh filesystem deployment has no blob
directory yet, so operators run this once (``make run`` calls it every time; it is
idempotent).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from archive import storage


class Command(BaseCommand):
    help = "Create the DICOM blob store (S3 bucket or filesystem directory) if it is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            message = storage.ensure_bucket()
        except storage.StorageError as exc:
            raise CommandError(f"could not prepare blob storage: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(message))
