"""The real-services tier really runs on PostgreSQL and S3 (it must never fall back silently)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.db import connection

from archive.models import Instance
from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, to_part10

pytestmark = pytest.mark.real_services


def test_tier_uses_postgresql(db):
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


def test_store_lands_in_the_s3_bucket(api, seaweedfs):
    backend = storages["dicom"]
    assert type(backend).__name__ == "S3Storage"
    ds = make_dataset()
    data = to_part10(ds)
    assert stow(api, [data]).status_code == 200
    key = Instance.objects.get(instance_uid=ds.SOPInstanceUID).blob_key
    # Read the object straight from SeaweedFS with boto3, bypassing Archway.
    location = backend.location.strip("/")
    object_key = f"{location}/{key}" if location else key
    body = seaweedfs.client().get_object(Bucket=seaweedfs.bucket, Key=object_key)
    assert body["Body"].read() == b"\x00" * 128 + data[128:]
