"""System checks for archive configuration (``manage.py check`` and server start)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.compatibility)
def storage_check(app_configs: object, **kwargs: object) -> list:
    problems = []
    dicom = settings.STORAGES.get("dicom")
    if dicom is None:
        problems.append(Error("STORAGES has no 'dicom' alias", id="archive.E001"))
    elif dicom["BACKEND"].endswith("S3Storage") and not dicom.get("OPTIONS", {}).get("bucket_name"):
        problems.append(
            Error(
                "S3 storage selected but no bucket is set", hint="Set ARCHWAY_S3_BUCKET.", id="archive.E002"
            )
        )
    if not settings.DEBUG and settings.SECRET_KEY.startswith("archway-insecure"):
        problems.append(
            Warning(
                "SECRET_KEY is the insecure development default",
                hint="Set SECRET_KEY (or run `make run`, which creates var/secret_key).",
                id="archive.W001",
            )
        )
    return problems
