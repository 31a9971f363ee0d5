"""Derived objects: thumbnails follow their instance version; sweep_orphans removes stale ones."""

from __future__ import annotations

import io
import re

import pytest

from archive import storage
from archive.ingest import store
from archive.models import Instance
from archive.tasks import derived_prefix, parse_derived_key
from rendering import tasks, thumbnails
from tests.archive.test_commands import run
from tests.factories import make_instance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def thumbnails_on_store(settings):
    settings.ARCHWAY_THUMBNAILS_ON_STORE = True  # the default with a broker (tasks run eagerly here)


def stored(**kwargs) -> Instance:
    outcome = store(io.BytesIO(make_instance(**kwargs)), replace=True)
    assert outcome.stored, outcome.failure_message
    return Instance.objects.get(pk=outcome.instance_id)


def derived(instance: Instance) -> list[str]:
    return [blob.key for blob in storage.iter_blobs(derived_prefix(instance.blob_key))]


def test_derived_keys_mirror_the_blob_key():
    key = "dicom/1.2/1.2.3/1.2.3.4.ff.dcm"
    assert derived_prefix(key) == "derived/1.2/1.2.3/1.2.3.4/"
    assert derived_prefix(key, this_version=True) == "derived/1.2/1.2.3/1.2.3.4/ff/"
    assert parse_derived_key("derived/1.2/1.2.3/1.2.3.4/ff/thumbnail-1-128x128.jpg") == ("1.2.3.4", 255)
    assert parse_derived_key("derived/elsewhere.bin") is None
    with pytest.raises(ValueError):
        derived_prefix("exports/report.bin")


def test_the_thumbnail_task_is_idempotent_and_skips_instances_without_pixels(transactional_db, dicom_storage):
    instance = stored()
    assert len(derived(instance)) == 1  # made on store (eagerly, no broker)
    assert tasks.make_thumbnails(instance.pk) == "present"
    assert tasks.make_thumbnails(10**9) == "gone"


def test_a_replaced_instance_gets_a_new_thumbnail_and_loses_the_old(transactional_db, dicom_storage):
    first = stored(pixel_seed=1)
    old_keys = derived(first)
    second = stored(instance_uid=first.instance_uid, study_uid=first.study.study_uid,
                    series_uid=first.series.series_uid, pixel_seed=2)  # fmt: skip
    new_keys = derived(second)
    assert len(new_keys) == 1 and new_keys != old_keys
    assert not any(storage.exists(key) for key in old_keys)


def test_sweep_orphans_removes_derived_objects_of_gone_versions(transactional_db, dicom_storage):
    instance = stored()
    kept = derived(instance)
    source = thumbnails.source_by_pk(instance.pk)
    stale = thumbnails.thumbnail_key(source, 1, 64, 64, "image/png").replace(
        f"/{instance.version:x}/", f"/{instance.version - 1:x}/"
    )
    gone = "derived/1.2/1.2.3/1.2.3.4/ff/thumbnail-1-128x128.jpg"
    for key in (stale, gone):
        storage.put(key, io.BytesIO(b"x"), size=1)
    out, _, code = run("sweep_orphans", "--grace", "0")
    assert code == 0
    assert not storage.exists(stale) and not storage.exists(gone)
    assert all(storage.exists(key) for key in kept)
    assert re.search(r"derived objects deleted\s+2\b", out)


def test_pre_transcoded_copy_is_made_and_served(api, settings):
    from rendering.codecs import encodable

    target = "1.2.840.10008.1.2.5"  # RLE lossless
    if target not in encodable():
        pytest.skip("no RLE encoder installed")
    settings.ARCHWAY_PRETRANSCODE = [target]
    from tests.dicomweb.test_stow import stow
    from tests.factories import make_dataset, to_part10

    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    instance = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    key = tasks.transcoded_key(instance.blob_key, target)
    assert storage.exists(key)
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    response = api.get(url, headers={"Accept": f"application/dicom; transfer-syntax={target}"})
    assert response.status_code == 200
    assert response.content == b"".join(storage.open_stream(key))
