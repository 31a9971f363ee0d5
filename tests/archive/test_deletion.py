"""archive.deletion without HTTP: transactions, aggregates, blobs, change feed, query counts."""

from __future__ import annotations

import io

import pytest
from celery.signals import task_prerun
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from archive import deletion, storage
from archive.ingest import store
from archive.models import ChangeFeedEntry, Instance, Patient, Series, Study
from archive.tasks import derived_prefix
from tests.factories import make_instance, new_uid

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def archive(transactional_db, dicom_storage):
    """Blob storage and a database whose transactions really commit (on_commit runs)."""
    return dicom_storage


def put(**kwargs) -> Instance:
    outcome = store(io.BytesIO(make_instance(**kwargs)))
    assert outcome.stored, outcome.failure_message
    return Instance.objects.get(instance_uid=outcome.instance_uid)


def a_study(series: int, per_series: int, *, patient_id: str = "PAT-1") -> list[Instance]:
    study_uid = new_uid()
    instances = []
    for s in range(series):
        series_uid = new_uid()
        for n in range(per_series):
            instances.append(
                put(
                    study_uid=study_uid,
                    series_uid=series_uid,
                    patient_id=patient_id,
                    modality=("CT", "MR", "US")[s % 3],
                    InstanceNumber=n + 1,
                )
            )
    return instances


@pytest.fixture
def tasks_run():
    """The (keys, instance UIDs) of each delete_blobs task that ran (eagerly) — a spy, no mock."""
    calls: list[tuple[list[str], list[str]]] = []

    def record(sender=None, args=(), **kwargs):
        if sender is not None and sender.name == "archive.delete_blobs":
            calls.append((list(args[0]), list(args[1])))

    task_prerun.connect(record, weak=False)
    yield calls
    task_prerun.disconnect(record)


def test_delete_study_removes_everything_and_its_patient(archive, tasks_run):
    instances = a_study(2, 2)
    study_uid = instances[0].study.study_uid
    keys = {i.blob_key for i in instances}

    deleted = deletion.delete_study(study_uid)

    assert set(deleted.blob_keys) == keys
    assert set(deleted.instance_uids) == {i.instance_uid for i in instances}
    assert len(deleted) == 4
    assert not Instance.objects.exists()
    assert not Series.objects.exists()
    assert not Study.objects.exists()
    assert not Patient.objects.exists()
    assert not any(storage.exists(key) for key in keys)
    assert len(tasks_run) == 1


def test_delete_study_keeps_a_patient_with_other_studies(archive):
    first = a_study(1, 1, patient_id="SHARED")
    second = a_study(1, 1, patient_id="SHARED")
    deletion.delete_study(first[0].study.study_uid)
    assert Patient.objects.filter(patient_id="SHARED").count() == 1
    assert Study.objects.get().study_uid == second[0].study.study_uid


def test_delete_series_recomputes_the_study_once(archive):
    instances = a_study(3, 2)  # CT, MR, US
    mr_series = instances[2].series
    study = instances[0].study

    deletion.delete_series(study.study_uid, mr_series.series_uid)

    study.refresh_from_db()
    remaining = Instance.objects.filter(study=study)
    assert study.number_of_series == 2
    assert study.number_of_instances == remaining.count() == 4
    assert study.size_bytes == sum(i.size_bytes for i in remaining)
    assert study.modalities_in_study == "CT\\US"
    assert not Series.objects.filter(pk=mr_series.pk).exists()


def test_delete_instance_updates_series_and_study(archive):
    instances = a_study(1, 3)
    gone = instances[1]
    deletion.delete_instance(gone.study.study_uid, gone.series.series_uid, gone.instance_uid)
    series = Series.objects.get(pk=gone.series_id)
    study = Study.objects.get(pk=gone.study_id)
    assert series.number_of_instances == study.number_of_instances == 2
    assert series.size_bytes == study.size_bytes == instances[0].size_bytes + instances[2].size_bytes
    assert not storage.exists(gone.blob_key)
    assert all(storage.exists(i.blob_key) for i in (instances[0], instances[2]))


def test_missing_resources_raise_nothing_to_delete(archive):
    (instance,) = a_study(1, 1)
    study_uid, series_uid = instance.study.study_uid, instance.series.series_uid
    with pytest.raises(deletion.NothingToDelete, match="Study"):
        deletion.delete_study(new_uid())
    with pytest.raises(deletion.NothingToDelete, match="Series"):
        deletion.delete_series(study_uid, new_uid())
    with pytest.raises(deletion.NothingToDelete, match="Series"):
        deletion.delete_series(new_uid(), series_uid)
    with pytest.raises(deletion.NothingToDelete, match="Instance"):
        deletion.delete_instance(study_uid, series_uid, new_uid())
    with pytest.raises(deletion.NothingToDelete, match="Instance"):
        deletion.delete_instance(study_uid, new_uid(), instance.instance_uid)
    assert Instance.objects.count() == 1
    assert ChangeFeedEntry.objects.filter(action="delete").count() == 0


def test_a_rolled_back_delete_changes_nothing_and_deletes_no_blob(archive, tasks_run):
    instances = a_study(1, 2)
    study_uid = instances[0].study.study_uid

    with pytest.raises(RuntimeError), transaction.atomic():
        deletion.delete_study(study_uid)
        raise RuntimeError("the surrounding transaction fails")

    assert Instance.objects.count() == 2
    assert Study.objects.get().number_of_instances == 2
    assert all(storage.exists(i.blob_key) for i in instances)
    assert tasks_run == []
    assert set(ChangeFeedEntry.objects.values_list("action", "state")) == {("create", "current")}


def test_change_feed_entries_are_written_with_the_delete(archive):
    instances = a_study(2, 2)
    study = instances[0].study
    deletion.delete_series(study.study_uid, instances[0].series.series_uid)
    deleted_uids = {i.instance_uid for i in instances[:2]}
    deletes = ChangeFeedEntry.objects.filter(action="delete")
    assert {e.instance_uid for e in deletes} == deleted_uids
    assert {(e.state, e.study_uid, e.series_uid) for e in deletes} == {
        ("deleted", study.study_uid, instances[0].series.series_uid)
    }
    assert {e.version for e in deletes} == {i.version for i in instances[:2]}
    creates = ChangeFeedEntry.objects.filter(action="create")
    assert {e.instance_uid: e.state for e in creates} == {
        **dict.fromkeys(deleted_uids, "deleted"),
        **dict.fromkeys((i.instance_uid for i in instances[2:]), "current"),
    }


def test_blob_deletion_is_batched(archive, tasks_run, monkeypatch):
    monkeypatch.setattr(deletion, "BLOB_BATCH", 2)
    instances = a_study(1, 5)
    deletion.delete_study(instances[0].study.study_uid)
    assert [len(keys) for keys, _ in tasks_run] == [2, 2, 1]
    assert {key for keys, _ in tasks_run for key in keys} == {i.blob_key for i in instances}
    assert all(len(keys) == len(uids) for keys, uids in tasks_run)


def test_derived_objects_are_deleted_with_the_instance(archive):
    kept, gone = a_study(1, 2)
    for instance in (kept, gone):
        for name in ("thumbnail.jpg", "rendered/1.png"):
            key = f"{derived_prefix(instance.blob_key, this_version=True)}{name}"
            storage.put(key, io.BytesIO(b"derived"), size=7)
    kept_before = len(list(storage.iter_blobs(derived_prefix(kept.blob_key))))  # with its thumbnail
    deletion.delete_instance(gone.study.study_uid, gone.series.series_uid, gone.instance_uid)
    assert list(storage.iter_blobs(derived_prefix(gone.blob_key))) == []
    assert len(list(storage.iter_blobs(derived_prefix(kept.blob_key)))) == kept_before >= 2


def _queries_to_delete_study(series: int, per_series: int) -> int:
    instances = a_study(series, per_series)
    with CaptureQueriesContext(connection) as queries:
        deletion.delete_study(instances[0].study.study_uid)
    assert not Study.objects.exists()
    return len(queries)


def test_deleting_a_study_costs_the_same_queries_whatever_its_size(archive):
    small = _queries_to_delete_study(1, 1)
    large = _queries_to_delete_study(3, 4)
    assert large == small
