"""Ingest in batches (archive.ingest.StoreBatch): several instances per index transaction.

A STOW request's instances are written one by one and indexed together; these tests
check that nothing a user can observe differs from storing them one at a time: the
outcome of each part, in order; the counts, modalities and latest-wins attributes of
studies and series; the change feed; and that one failing instance still fails alone.
"""

from __future__ import annotations

import io

import pytest

from archive import storage
from archive.ingest import StoreBatch
from archive.models import ChangeFeedEntry, Instance, Series, Study
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = [pytest.mark.both_tiers, pytest.mark.django_db(transaction=True)]


def _part(**kwargs) -> io.BytesIO:
    return io.BytesIO(to_part10(make_dataset(**kwargs)))


def test_a_request_of_many_instances_is_indexed_as_if_stored_one_by_one(dicom_storage):
    study = new_uid()
    ct, mr = new_uid(), new_uid()
    parts = []
    for number in range(1, 61):  # more than one batch (StoreBatch.MAX_PENDING = 50)
        series, modality = (ct, "CT") if number % 3 else (mr, "MR")
        parts.append(
            make_dataset(
                study_uid=study,
                series_uid=series,
                modality=modality,
                InstanceNumber=number,
                SeriesDescription=f"{modality} description {number}",
                pixel_seed=number,
            )
        )
    batch = StoreBatch()
    for index, ds in enumerate(parts):
        batch.add(io.BytesIO(to_part10(ds)))
        if index == 20:
            batch.add(io.BytesIO(b"not DICOM at all"))  # fails alone
        if index == 30:
            batch.add(io.BytesIO(to_part10(parts[5])))  # the same instance again
    outcomes = batch.finish()

    assert len(outcomes) == 62
    assert [o.failure for o in outcomes if not o.stored] == [272, 45070]
    assert outcomes[21].failure == 272 and outcomes[32].failure == 45070
    stored = [o.instance_uid for o in outcomes if o.stored]
    assert stored == [ds.SOPInstanceUID for ds in parts]

    row = Study.objects.get(study_uid=study)
    assert row.number_of_instances == 60
    assert row.number_of_series == 2
    assert row.modalities_in_study == "CT\\MR"
    assert row.size_bytes == sum(Instance.objects.filter(study=row).values_list("size_bytes", flat=True))
    counts = dict(Series.objects.filter(study=row).values_list("series_uid", "number_of_instances"))
    assert counts == {ct: 40, mr: 20}
    # Latest wins: the series carry the description of their last instance.
    descriptions = dict(Series.objects.filter(study=row).values_list("series_uid", "series_description"))
    assert descriptions == {ct: "CT description 59", mr: "MR description 60"}
    feed = list(ChangeFeedEntry.objects.order_by("sequence").values_list("instance_uid", flat=True))
    assert feed == stored
    # Every stored instance has its blob; the rejected duplicate left none.
    keys = set(Instance.objects.values_list("blob_key", flat=True))
    assert {blob.key for blob in storage.iter_blobs("dicom/")} == keys
    assert len(keys) == 60


def test_an_index_failure_in_a_batch_fails_only_that_instance(dicom_storage):
    """A row for one of the batch's instances appears after its claim and check (another
    writer that bypassed the claim: caused for real, by inserting that row directly).
    The batch transaction fails on the unique constraint; the instances are then indexed
    one by one, so exactly that one fails (45070) and its blob is removed."""
    study, series = new_uid(), new_uid()
    first, second, third = (
        make_dataset(study_uid=study, series_uid=series, InstanceNumber=n, pixel_seed=n) for n in (1, 2, 3)
    )
    other = StoreBatch()
    other.add(io.BytesIO(to_part10(make_dataset(study_uid=study, series_uid=series, instance_uid=new_uid()))))
    other.finish()

    batch = StoreBatch()
    for ds in (first, second, third):
        batch.add(io.BytesIO(to_part10(ds)))
    # The racing writer: a committed row with the second instance's UID.
    template = Instance.objects.get()
    Instance.objects.create(
        **{
            field.attname: getattr(template, field.attname)
            for field in Instance._meta.concrete_fields
            if field.attname not in ("id", "instance_uid", "blob_key")
        },
        instance_uid=second.SOPInstanceUID,
        blob_key="dicom/racing/writer.dcm",
    )
    outcomes = batch.finish()

    assert [(o.instance_uid, o.failure) for o in outcomes] == [
        (first.SOPInstanceUID, None),
        (second.SOPInstanceUID, 45070),
        (third.SOPInstanceUID, None),
    ]
    written = [blob.key for blob in storage.iter_blobs("dicom/") if second.SOPInstanceUID in blob.key]
    assert written == []  # the loser's blob is gone
    assert Study.objects.get(study_uid=study).number_of_instances == 3  # other, first and third


def test_a_batch_whose_folder_cannot_be_made_durable_stores_nothing(dicom_storage, settings):
    """The blobs' folder vanishes before the batch commits (caused for real: removed from
    disk). The folder fsync that makes the new names durable fails, so no instance of the
    batch may be indexed: each fails with 42752 and the index stays empty."""
    if dicom_storage != "filesystem":
        pytest.skip("folders exist only on the filesystem backend")
    import shutil
    from pathlib import Path

    study, series = new_uid(), new_uid()
    batch = StoreBatch()
    for number in (1, 2):
        batch.add(_part(study_uid=study, series_uid=series, InstanceNumber=number, pixel_seed=number))
    shutil.rmtree(Path(settings.STORAGES["dicom"]["OPTIONS"]["location"]) / "dicom" / study)
    outcomes = batch.finish()
    assert [o.failure for o in outcomes] == [42752, 42752]
    assert not Instance.objects.exists()
    assert not ChangeFeedEntry.objects.exists()
