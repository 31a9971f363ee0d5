"""STOW-RS through a real HTTP client against the running server (both tiers)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pydicom
import pytest
from django.test import override_settings

from archive import storage
from archive.models import Instance, Series, Study
from tests.conftest import make_user
from tests.factories import make_dataset, make_instance, multipart_body, new_uid, to_part10
from tests.testdata import readable_part10_files

pytestmark = pytest.mark.both_tiers

REQUIRED = {
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "SOPInstanceUID": 0x00080018,
    "SOPClassUID": 0x00080016,
}


def stow(
    client: httpx.Client,
    parts: list[bytes],
    path: str = "/dicomweb/studies",
    method: str = "POST",
    **headers: str,
) -> httpx.Response:
    body, content_type = multipart_body(parts)
    return client.request(
        method,
        path,
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json", **headers},
    )


def sanitized_sha256(data: bytes) -> str:
    return hashlib.sha256(b"\x00" * 128 + data[128:]).hexdigest()


def stored_bytes(instance_uid: str) -> bytes:
    row = Instance.objects.get(instance_uid=instance_uid)
    return b"".join(storage.open_stream(row.blob_key))


def referenced(body: dict) -> list[dict]:
    return body.get("00081199", {}).get("Value", [])


def failed(body: dict) -> list[dict]:
    return body.get("00081198", {}).get("Value", [])


def value(item: dict, tag: str):
    return item[tag]["Value"][0]


# --- success -----------------------------------------------------------------------------


def test_stow_of_one_instance_answers_200_with_retrieve_urls(api, live_url):
    ds = make_dataset()
    data = to_part10(ds)
    response = stow(api, [data])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    body = response.json()
    assert failed(body) == []
    (item,) = referenced(body)
    assert value(item, "00081150") == ds.SOPClassUID
    assert value(item, "00081155") == ds.SOPInstanceUID
    assert value(item, "00081190") == (
        f"{live_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    assert value(body, "00081190") == f"{live_url}/dicomweb/studies/{ds.StudyInstanceUID}"
    row = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    assert row.sha256 == sanitized_sha256(data)
    assert row.size_bytes == len(data)
    assert stored_bytes(ds.SOPInstanceUID) == b"\x00" * 128 + data[128:]
    assert row.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert row.frame_table["kind"] == "native"


def test_single_part_application_dicom_is_accepted(api):
    ds = make_dataset()
    response = api.post(
        "/dicomweb/studies", content=to_part10(ds), headers={"Content-Type": "application/dicom"}
    )
    assert response.status_code == 200, response.text
    assert Instance.objects.filter(instance_uid=ds.SOPInstanceUID).exists()


def test_index_holds_study_series_and_instance_attributes(api):
    study_uid = new_uid()
    series_uid = new_uid()
    parts = [
        make_instance(
            study_uid=study_uid, series_uid=series_uid, InstanceNumber=n, patient_name="Müller^Jürgen"
        )
        for n in (1, 2, 3)
    ]
    parts.append(make_instance(study_uid=study_uid, modality="MR", patient_name="Müller^Jürgen"))
    assert stow(api, parts).status_code == 200
    study = Study.objects.get(study_uid=study_uid)
    assert study.number_of_instances == 4
    assert study.number_of_series == 2
    assert study.modalities_in_study == "CT\\MR"
    assert study.patient_name == "Müller^Jürgen"
    assert study.patient_name_norm == "MULLER^JURGEN"
    assert str(study.study_date) == "2024-01-02"
    assert study.patient.patient_id == "PAT-1"
    assert study.attributes["00081030"]["Value"] == ["Synthetic study"]
    series = Series.objects.get(series_uid=series_uid)
    assert series.number_of_instances == 3
    assert series.modality == "CT"
    instance = Instance.objects.filter(series=series).order_by("instance_number").first()
    assert instance.instance_number == 1
    assert instance.rows == 16 and instance.columns == 16
    # Metadata as DICOM JSON, pixel data only as a BulkDataURI placeholder.
    assert instance.metadata["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulkdata/7FE00010"}
    assert instance.metadata["00100010"]["Value"] == [{"Alphabetic": "Müller^Jürgen"}]


def test_latest_store_wins_for_study_attributes(api):
    study_uid = new_uid()
    assert stow(api, [make_instance(study_uid=study_uid, StudyDescription="first")]).status_code == 200
    assert stow(api, [make_instance(study_uid=study_uid, StudyDescription="second")]).status_code == 200
    assert Study.objects.get(study_uid=study_uid).study_description == "second"


def test_frame_table_records_each_frame_offset(api):
    ds = make_dataset(frames=3, rows=8, columns=8)
    data = to_part10(ds)
    assert stow(api, [data]).status_code == 200
    row = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    table = row.frame_table
    assert table["number_of_frames"] == 3 and table["frame_length"] == 128
    pixels = ds.PixelData
    for index in range(3):
        start = table["offset"] + index * table["frame_length"]
        assert storage.read_range(row.blob_key, start, 128) == pixels[index * 128 : (index + 1) * 128]


def test_implicit_vr_instance_is_stored_as_received(api):
    ds = make_dataset()
    data = to_part10(ds, transfer_syntax="1.2.840.10008.1.2")
    assert stow(api, [data]).status_code == 200
    assert stored_bytes(ds.SOPInstanceUID) == b"\x00" * 128 + data[128:]
    assert Instance.objects.get(instance_uid=ds.SOPInstanceUID).transfer_syntax_uid == "1.2.840.10008.1.2"


def test_preamble_is_replaced_with_zeros(api):
    ds = make_dataset()
    data = to_part10(ds, preamble=b"II*\x00 a TIFF header hiding in the preamble")
    assert stow(api, [data]).status_code == 200
    stored = stored_bytes(ds.SOPInstanceUID)
    assert stored[:128] == b"\x00" * 128
    assert stored[128:] == data[128:]


def test_chunked_upload_without_content_length_is_stored(api):
    ds = make_dataset()
    body, content_type = multipart_body([to_part10(ds)])

    def chunks():
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = api.post("/dicomweb/studies", content=chunks(), headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert Instance.objects.filter(instance_uid=ds.SOPInstanceUID).exists()


def test_quoted_and_unquoted_type_and_boundary_are_accepted(api):
    ds = make_dataset()
    body, _ = multipart_body([to_part10(ds)], boundary="abc123")
    response = api.post(
        "/dicomweb/studies",
        content=body,
        headers={"Content-Type": 'multipart/related; type=application/dicom; boundary="abc123"'},
    )
    assert response.status_code == 200, response.text


# --- warnings and failures -------------------------------------------------------------------


def test_invalid_attribute_is_stored_with_a_warning_naming_it(api):
    ds = make_dataset(PatientBirthDate="2021-13-45")
    response = stow(api, [to_part10(ds)])
    assert response.status_code == 202
    (item,) = referenced(response.json())
    assert value(item, "00081196") == 45063
    comments = [c["00000902"]["Value"][0] for c in item["00741048"]["Value"]]
    assert any("(0010,0030)" in c and "PatientBirthDate" in c for c in comments), comments
    assert Instance.objects.filter(instance_uid=ds.SOPInstanceUID).exists()


def test_garbage_part_fails_alone(api):
    good = make_dataset()
    response = stow(api, [b"this is not DICOM at all" * 10, to_part10(good)])
    assert response.status_code == 202
    body = response.json()
    (failure,) = failed(body)
    assert value(failure, "00081197") == 272
    (item,) = referenced(body)
    assert value(item, "00081155") == good.SOPInstanceUID
    assert Instance.objects.count() == 1


def test_missing_patient_id_fails_with_43264(api):
    ds = make_dataset(patient_id=None)
    response = stow(api, [to_part10(ds)])
    assert response.status_code == 409
    (failure,) = failed(response.json())
    assert value(failure, "00081197") == 43264
    assert value(failure, "00081155") == ds.SOPInstanceUID
    assert "PatientID" in failure["00741048"]["Value"][0]["00000902"]["Value"][0]
    assert Instance.objects.count() == 0
    assert list(storage.iter_blobs()) == []


def test_empty_patient_id_is_accepted(api):
    assert stow(api, [make_instance(patient_id="")]).status_code == 200


def test_malformed_instance_uid_fails_with_43264(api):
    response = stow(api, [make_instance(instance_uid="1.2.3_bad!")])
    assert response.status_code == 409
    (failure,) = failed(response.json())
    assert value(failure, "00081197") == 43264
    assert "SOPInstanceUID" in failure["00741048"]["Value"][0]["00000902"]["Value"][0]


def test_uid_with_letters_and_dashes_is_accepted(api):
    # The conformance statement accepts letters, digits, '.' and '-'.
    assert stow(api, [make_instance(study_uid="1.2.abc-def")]).status_code == 200


def test_study_mismatch_fails_with_43265(api):
    other = new_uid()
    response = stow(api, [make_instance()], path=f"/dicomweb/studies/{other}")
    assert response.status_code == 409
    (failure,) = failed(response.json())
    assert value(failure, "00081197") == 43265


def test_store_into_named_study(api, live_url):
    study_uid = new_uid()
    response = stow(api, [make_instance(study_uid=study_uid)], path=f"/dicomweb/studies/{study_uid}")
    assert response.status_code == 200
    assert value(response.json(), "00081190") == f"{live_url}/dicomweb/studies/{study_uid}"


def test_duplicate_instance_fails_with_45070(api):
    data = make_instance()
    assert stow(api, [data]).status_code == 200
    response = stow(api, [data])
    assert response.status_code == 409
    (failure,) = failed(response.json())
    assert value(failure, "00081197") == 45070
    assert Instance.objects.count() == 1
    assert len(list(storage.iter_blobs())) == 1


def test_mixed_duplicate_and_new_answers_202(api):
    first = make_instance()
    assert stow(api, [first]).status_code == 200
    response = stow(api, [first, make_instance()])
    assert response.status_code == 202
    body = response.json()
    assert [value(f, "00081197") for f in failed(body)] == [45070]
    assert len(referenced(body)) == 1


def test_concurrent_stores_of_one_instance_have_exactly_one_winner(api, live_url):
    data = make_instance(rows=256, columns=256)
    body, content_type = multipart_body([data])
    results: list[httpx.Response] = []
    barrier = threading.Barrier(4)
    token = api.headers["Authorization"]

    def send():
        with httpx.Client(base_url=live_url, timeout=60) as client:
            barrier.wait()
            results.append(
                client.post(
                    "/dicomweb/studies",
                    content=body,
                    headers={"Content-Type": content_type, "Authorization": token},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409, 409, 409], [r.text for r in results]
    for response in results:
        if response.status_code == 409:
            assert value(failed(response.json())[0], "00081197") in (45070, 45071)
    assert Instance.objects.count() == 1
    assert len(list(storage.iter_blobs())) == 1


_HOLD_CLAIM = """
import sys, time
import django
django.setup()
from archive.claims import claim
with claim(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_store_in_flight_in_another_process_answers_45071_and_a_crash_releases_it(api, tmp_path):
    """Another Archway process holds the claim on a UID (its store is writing the blob)."""
    data = make_instance(rows=64, columns=64)
    uid = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "ARCHWAY_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "test",
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_CLAIM, uid],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        response = stow(api, [data])
        assert response.status_code == 409, response.text
        (failure,) = failed(response.json())
        assert value(failure, "00081197") == 45071
        assert not Instance.objects.filter(instance_uid=uid).exists()
        assert list(storage.iter_blobs()) == []
    finally:
        holder.kill()  # a crash: nothing runs to release the claim
        holder.wait(timeout=30)
    response = stow(api, [data])
    assert response.status_code == 200, response.text
    assert Instance.objects.filter(instance_uid=uid).exists()


def test_claims_exclude_threads_of_one_process(db):
    from archive.claims import claim
    from archive.errors import InstanceInFlight

    uid = new_uid()
    with claim(uid):
        with pytest.raises(InstanceInFlight), claim(uid):
            pass
        with claim(new_uid()):  # another UID is not affected
            pass
    with claim(uid):  # released
        pass


def test_truncated_body_reports_what_was_stored(api):
    first, second = make_dataset(), make_dataset()
    body, content_type = multipart_body([to_part10(first), to_part10(second)])
    cut = body[: len(body) - 300]  # the second part loses its end and the close delimiter
    response = api.post("/dicomweb/studies", content=cut, headers={"Content-Type": content_type})
    assert response.status_code == 202
    body_json = response.json()
    assert [value(i, "00081155") for i in referenced(body_json)] == [first.SOPInstanceUID]
    (failure,) = failed(body_json)
    assert value(failure, "00081197") == 272
    assert "truncated" in failure["00741048"]["Value"][0]["00000902"]["Value"][0].lower()
    assert not Instance.objects.filter(instance_uid=second.SOPInstanceUID).exists()


# --- upsert --------------------------------------------------------------------------------


def test_put_replaces_an_existing_instance(api):
    ds = make_dataset(StudyDescription="before")
    assert stow(api, [to_part10(ds)]).status_code == 200
    old_key = Instance.objects.get(instance_uid=ds.SOPInstanceUID).blob_key
    ds.StudyDescription = "after"
    new_data = to_part10(ds)
    response = stow(api, [new_data], method="PUT")
    assert response.status_code == 200, response.text
    row = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    assert row.blob_key != old_key
    assert row.sha256 == sanitized_sha256(new_data)
    assert row.study.study_description == "after"
    assert row.study.number_of_instances == 1
    assert not storage.exists(old_key)
    assert [b.key for b in storage.iter_blobs()] == [row.blob_key]


def test_put_of_a_new_instance_stores_it(api):
    assert stow(api, [make_instance()], method="PUT").status_code == 200
    assert Instance.objects.count() == 1


# --- request-level errors ----------------------------------------------------------------------


def test_empty_request_answers_204(api):
    response = api.post(
        "/dicomweb/studies",
        content=b"",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=x'},
    )
    assert response.status_code == 204
    assert response.content == b""


def test_malformed_study_uid_in_path_answers_400(api):
    response = stow(api, [make_instance()], path="/dicomweb/studies/not_a_uid!")
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.json()["detail"]
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        'multipart/related; type="application/pdf"; boundary=x',
        "application/json",
    ],
)
def test_unsupported_content_type_answers_415(api, content_type):
    response = api.post("/dicomweb/studies", content=b"x", headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["detail"]


def test_missing_content_type_answers_415(api):
    response = api.post("/dicomweb/studies", content=make_instance(), headers={"Content-Type": ""})
    assert response.status_code == 415


def test_multipart_without_boundary_answers_400(api):
    response = api.post(
        "/dicomweb/studies",
        content=b"x",
        headers={"Content-Type": 'multipart/related; type="application/dicom"'},
    )
    assert response.status_code == 400


def test_body_without_any_delimiter_answers_400(api):
    response = api.post(
        "/dicomweb/studies",
        content=b"garbage without delimiters",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=zzz'},
    )
    assert response.status_code == 400


@pytest.mark.parametrize("accept", ["image/png", "application/pdf;q=1, text/html"])
def test_unacceptable_accept_answers_406(api, accept):
    response = stow(api, [make_instance()], Accept=accept)
    assert response.status_code == 406
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(
    "accept",
    [
        "*/*",
        "application/*",
        "application/dicom+json",
        "application/json",
        "image/png;q=1, application/dicom+json;q=0.5",
    ],
)
def test_acceptable_accept_headers(api, accept):
    response = stow(api, [make_instance()], Accept=accept)
    assert response.status_code == 200


def test_oversized_declared_body_answers_413_and_stores_nothing(api):
    body, content_type = multipart_body([make_instance(rows=64, columns=64)])
    with override_settings(ARCHWAY_MAX_STOW_BYTES=4096):
        response = api.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 413
    assert Instance.objects.count() == 0


def test_oversized_chunked_body_answers_413_and_stores_nothing(api):
    body, content_type = multipart_body([make_instance(rows=128, columns=128)])

    def chunks():
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    with override_settings(ARCHWAY_MAX_STOW_BYTES=16384):
        response = api.post("/dicomweb/studies", content=chunks(), headers={"Content-Type": content_type})
    assert response.status_code == 413
    assert Instance.objects.count() == 0


# --- authentication and roles ---------------------------------------------------------------------


def test_unauthenticated_store_answers_401(anonymous):
    response = stow(anonymous, [make_instance()])
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(
    "authorization", ["Bearer None", "Bearer not-a-token", "Token nope", "Basic Zm9vOmJhcg=="]
)
def test_bad_credentials_answer_401(anonymous, authorization):
    assert stow(anonymous, [make_instance()], Authorization=authorization).status_code == 401


def test_read_only_user_gets_403(live_url):
    _, key = make_user("reader", ("read",))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Token {key}"}) as client:
        response = stow(client, [make_instance()])
    assert response.status_code == 403
    assert "write" in response.json()["detail"]


def test_role_changes_apply_to_the_next_request(live_url):
    """Roles are cached per process (dicomweb.permissions); a change made here clears the cache."""
    from django.contrib.auth.models import Group

    user, key = make_user("writer", ("read", "write"))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert stow(client, [make_instance()]).status_code == 200
        user.groups.remove(Group.objects.get(name="write"))
        assert stow(client, [make_instance()]).status_code == 403
        user.groups.add(Group.objects.get(name="write"))
        assert stow(client, [make_instance()]).status_code == 200


def test_revoked_token_and_deactivated_user_apply_to_the_next_request(live_url):
    """Tokens are cached per process (dicomweb.authentication); revoking clears the cache."""
    from rest_framework.authtoken.models import Token

    user, key = make_user("revoked", ("read", "write"))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert stow(client, [make_instance()]).status_code == 200
        user.is_active = False
        user.save()
        assert stow(client, [make_instance()]).status_code == 401
        user.is_active = True
        user.save()
        assert stow(client, [make_instance()]).status_code == 200
        Token.objects.filter(key=key).delete()
        assert stow(client, [make_instance()]).status_code == 401


def test_superuser_may_store(live_url):
    _, key = make_user("root", superuser=True)
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert stow(client, [make_instance()]).status_code == 200


def test_anonymous_mode_allows_unauthenticated_store(anonymous):
    with override_settings(ARCHWAY_AUTH_MODE="anonymous"):
        assert stow(anonymous, [make_instance()]).status_code == 200


def test_wrong_method_answers_405(api):
    assert api.delete("/dicomweb/studies").status_code == 405


# --- the bundled corpus ---------------------------------------------------------------------------


def required_attribute_problem(path: Path) -> str | None:
    """Independent check (plain pydicom) of whether a file lacks a required attribute."""
    import re

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        return "TransferSyntaxUID"
    for keyword, tag in REQUIRED.items():
        element = ds.get(tag)
        text = str(element.value).strip("\x00 ") if element is not None else ""
        if not re.fullmatch(r"[0-9A-Za-z.\-]{1,64}", text):
            return keyword
    if "PatientID" not in ds:
        return "PatientID"
    return None


@pytest.mark.parametrize("path", readable_part10_files(), ids=lambda p: p.name)
def test_every_bundled_file_is_stored_byte_exact_or_rejected_for_a_required_attribute(api, path):
    data = path.read_bytes()
    response = api.post("/dicomweb/studies", content=data, headers={"Content-Type": "application/dicom"})
    problem = required_attribute_problem(path)
    if problem is None:
        assert response.status_code in (200, 202), response.text
        (item,) = referenced(response.json())
        instance_uid = value(item, "00081155")
        row = Instance.objects.get(instance_uid=instance_uid)
        assert row.sha256 == sanitized_sha256(data)
        assert stored_bytes(instance_uid) == b"\x00" * 128 + data[128:]
    else:
        assert response.status_code == 409, response.text
        (failure,) = failed(response.json())
        assert value(failure, "00081197") == 43264
        assert problem in failure["00741048"]["Value"][0]["00000902"]["Value"][0]
        assert Instance.objects.count() == 0


def test_file_meta_without_preamble_is_archived_as_part10(api):
    ds = make_dataset()
    data = to_part10(ds)[128 + 4 :]  # File Meta group first: no preamble, no DICM
    response = api.post("/dicomweb/studies", content=data, headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200, response.text
    assert stored_bytes(ds.SOPInstanceUID) == b"\x00" * 128 + b"DICM" + data
    row = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    assert row.size_bytes == len(data) + 132
    assert storage.read_range(row.blob_key, row.frame_table["offset"], 16) == ds.PixelData[:16]


def test_dataset_without_file_meta_fails_with_272(api):
    ds = make_dataset()
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)  # no preamble, no File Meta
    response = api.post(
        "/dicomweb/studies", content=buffer.getvalue(), headers={"Content-Type": "application/dicom"}
    )
    assert response.status_code == 409
    assert value(failed(response.json())[0], "00081197") == 272
