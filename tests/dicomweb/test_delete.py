"""Delete (the conformance statement's nonstandard transaction) over HTTP, both tiers."""

from __future__ import annotations

import httpx
import pytest
from django.core.management import call_command

from archive import storage
from archive.models import Instance, Patient, Series, Study
from tests.conftest import make_user
from tests.dicomweb.test_stow import stow
from tests.dicomweb.test_wado import instance_path
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers


def study_path(ds) -> str:
    return f"/dicomweb/studies/{ds.StudyInstanceUID}"


def series_path(ds) -> str:
    return f"{study_path(ds)}/series/{ds.SeriesInstanceUID}"


def keys_of(datasets) -> list[str]:
    uids = [ds.SOPInstanceUID for ds in datasets]
    keys = list(Instance.objects.filter(instance_uid__in=uids).values_list("blob_key", flat=True))
    assert len(keys) == len(uids)
    return keys


@pytest.fixture
def stored(api):
    """One study: a CT series of 3 instances and an MR series of 1."""
    study_uid = new_uid()
    ct_series = new_uid()
    datasets = [
        make_dataset(study_uid=study_uid, series_uid=ct_series, InstanceNumber=n, pixel_seed=n)
        for n in (1, 2, 3)
    ]
    datasets.append(make_dataset(study_uid=study_uid, modality="MR", pixel_seed=7))
    response = stow(api, [to_part10(ds) for ds in datasets])
    assert response.status_code == 200, response.text
    return datasets


def test_delete_study_removes_rows_blobs_and_resources(api, stored):
    keys = keys_of(stored)
    assert all(storage.exists(key) for key in keys)

    response = api.delete(study_path(stored[0]))
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert api.get(study_path(stored[0])).status_code == 404
    assert api.get(f"{study_path(stored[0])}/metadata").status_code == 404
    assert api.get(instance_path(stored[0])).status_code == 404
    assert api.get(f"{instance_path(stored[3])}/metadata").status_code == 404
    assert not Study.objects.filter(study_uid=stored[0].StudyInstanceUID).exists()
    assert not Series.objects.filter(series_uid__in={ds.SeriesInstanceUID for ds in stored}).exists()
    assert not Instance.objects.filter(instance_uid__in=[ds.SOPInstanceUID for ds in stored]).exists()
    assert not Patient.objects.exists()  # its only study is gone
    search = api.get("/dicomweb/studies", params={"StudyInstanceUID": stored[0].StudyInstanceUID})
    assert search.status_code == 204  # no match
    # Eager Celery: delete_blobs ran when the delete committed.
    assert not any(storage.exists(key) for key in keys)
    # Deleting it again: nothing there.
    assert api.delete(study_path(stored[0])).status_code == 404


def test_delete_series_recomputes_the_study(api, stored):
    ct, mr = stored[:3], stored[3]
    keys = keys_of(ct)
    response = api.delete(series_path(ct[0]))
    assert response.status_code == 204, response.text

    assert api.get(series_path(ct[0])).status_code == 404
    assert api.get(f"{series_path(ct[0])}/metadata").status_code == 404
    assert not Series.objects.filter(series_uid=ct[0].SeriesInstanceUID).exists()
    assert not any(storage.exists(key) for key in keys)

    study = Study.objects.get(study_uid=mr.StudyInstanceUID)
    assert study.number_of_series == 1
    assert study.number_of_instances == 1
    assert study.modalities_in_study == "MR"
    assert study.size_bytes == Instance.objects.get(instance_uid=mr.SOPInstanceUID).size_bytes
    # The other series is untouched and retrievable.
    assert api.get(instance_path(mr), headers={"Accept": "application/dicom"}).status_code == 200
    assert storage.exists(keys_of([mr])[0])


def test_delete_one_instance_keeps_the_rest_of_its_series(api, stored):
    gone, kept = stored[0], stored[1:3]
    (key,) = keys_of([gone])
    response = api.delete(instance_path(gone))
    assert response.status_code == 204, response.text

    assert api.get(instance_path(gone)).status_code == 404
    assert api.get(f"{instance_path(gone)}/metadata").status_code == 404
    assert not storage.exists(key)
    for ds in kept:
        assert api.get(instance_path(ds), headers={"Accept": "application/dicom"}).status_code == 200
    metadata = api.get(f"{series_path(gone)}/metadata")
    assert metadata.status_code == 200
    assert {item["00080018"]["Value"][0] for item in metadata.json()} == {ds.SOPInstanceUID for ds in kept}

    series = Series.objects.get(series_uid=gone.SeriesInstanceUID)
    assert series.number_of_instances == 2
    assert series.size_bytes == sum(
        Instance.objects.filter(series=series).values_list("size_bytes", flat=True)
    )
    study = Study.objects.get(study_uid=gone.StudyInstanceUID)
    assert (study.number_of_series, study.number_of_instances) == (2, 3)


def test_deleting_the_last_instance_of_a_series_removes_the_series(api, stored):
    mr = stored[3]
    assert api.delete(instance_path(mr)).status_code == 204
    assert not Series.objects.filter(series_uid=mr.SeriesInstanceUID).exists()
    study = Study.objects.get(study_uid=mr.StudyInstanceUID)
    assert (study.number_of_series, study.number_of_instances, study.modalities_in_study) == (1, 3, "CT")


def test_deleting_every_instance_one_by_one_removes_the_study(api, stored):
    for ds in stored:
        assert api.delete(instance_path(ds)).status_code == 204
    assert not Study.objects.exists()
    assert not Series.objects.exists()
    assert api.get(study_path(stored[0])).status_code == 404


def test_missing_resources_are_404(api, stored):
    ds = stored[0]
    other_study = new_uid()
    cases = [
        f"/dicomweb/studies/{other_study}",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{new_uid()}",
        f"{series_path(ds)}/instances/{new_uid()}",
        # The series and instance exist, but not under this study / series.
        f"/dicomweb/studies/{other_study}/series/{ds.SeriesInstanceUID}",
        f"{study_path(ds)}/series/{stored[3].SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
    ]
    for path in cases:
        response = api.delete(path)
        assert response.status_code == 404, (path, response.text)
        assert "not found" in response.json()["detail"]
    assert Instance.objects.count() == 4


@pytest.mark.parametrize(
    "path",
    [
        "/dicomweb/studies/1.2_3",
        "/dicomweb/studies/1.2.3/series/1.2%203",
        "/dicomweb/studies/1.2.3/series/1.2.4/instances/" + "1" * 65,
    ],
)
def test_malformed_uids_are_400(api, path):
    response = api.delete(path)
    assert response.status_code == 400, response.text
    assert "Invalid" in response.json()["detail"]


def test_delete_needs_the_delete_role(live_url, anonymous, stored):
    _, key = make_user("reader", ("read", "write"))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}) as reader:
        response = reader.delete(study_path(stored[0]))
    assert response.status_code == 403
    assert "'delete' role" in response.json()["detail"]

    response = anonymous.delete(study_path(stored[0]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert Instance.objects.count() == 4


def test_any_accept_header_is_fine(api, stored):
    response = api.delete(instance_path(stored[0]), headers={"Accept": "application/dicom"})
    assert response.status_code == 204


def test_allow_header_names_delete(api, stored):
    response = api.post(instance_path(stored[0]))
    assert response.status_code == 405
    assert "DELETE" in response.headers["allow"]


def test_blob_deletion_failure_is_retried_after_a_204(api, stored, monkeypatch):
    keys = keys_of(stored[:3])
    real_delete = storage.delete
    calls: list[str] = []

    def flaky_delete(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise storage.StorageUnavailable("simulated outage")
        real_delete(key)

    # The only mock in this module: blob storage cannot be made to fail on demand
    # otherwise. The server runs in this process, so the task sees the patched function.
    monkeypatch.setattr(storage, "delete", flaky_delete)
    response = api.delete(series_path(stored[0]))
    assert response.status_code == 204, response.text
    assert not Instance.objects.filter(instance_uid__in=[ds.SOPInstanceUID for ds in stored[:3]]).exists()
    # The task failed on its first key and was retried (eagerly: right away).
    assert calls.count(calls[0]) == 2
    assert not any(storage.exists(key) for key in keys)


def test_blobs_left_by_a_failed_task_are_swept_later(api, stored, monkeypatch):
    keys = keys_of(stored)

    def broken_delete(key: str) -> None:
        raise storage.StorageUnavailable("simulated outage")

    # The only mock here (as above): storage that keeps failing, so every retry fails.
    monkeypatch.setattr(storage, "delete", broken_delete)
    response = api.delete(study_path(stored[0]))
    assert response.status_code == 204, response.text
    assert not Instance.objects.exists()
    assert all(storage.exists(key) for key in keys)  # orphans now

    monkeypatch.undo()
    call_command("sweep_orphans", "--grace", "0", stdout=_Null())
    assert not any(storage.exists(key) for key in keys)


class _Null:
    def write(self, text: str) -> None:
        pass
