"""Correct patient/study attributes and delete from the admin, seen through DICOMweb."""

from __future__ import annotations

import io
import re

import pydicom
import pytest

from tests.admin.support import csrf, login, stow
from tests.factories import make_instance, new_uid

both_tiers = pytest.mark.both_tiers


def _form_fields(html: str) -> dict[str, str]:
    """The current values of the change form's inputs (what a browser would submit)."""
    fields = {}
    for match in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        fields[match.group(1)] = match.group(2)
    for match in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        selected = re.search(r'<option value="([^"]*)"[^>]*selected', match.group(2))
        fields[match.group(1)] = selected.group(1) if selected else ""
    return fields


def _two_instance_study(api) -> tuple[str, str, list[str]]:
    study_uid, series_uid = new_uid(), new_uid()
    instance_uids = [new_uid(), new_uid()]
    for number, uid in enumerate(instance_uids, 1):
        stow(
            api,
            make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                instance_uid=uid,
                patient_name="Smiht^Jane",
                patient_id="P-42",
                InstanceNumber=number,
            ),
        )
    return study_uid, series_uid, instance_uids


@both_tiers
def test_patient_name_correction_shows_in_dicomweb_and_original_is_kept(live_url, api):
    study_uid, series_uid, instance_uids = _two_instance_study(api)
    from archive.models import Patient

    patient = Patient.objects.get(patient_id="P-42")
    browser = login(live_url, "pacsadmin")
    url = f"/admin/archive/patient/{patient.pk}/change/"
    form = _form_fields(browser.get(url).text)
    assert form["patient_name"] == "Smiht^Jane"
    form["patient_name"] = "Smith^Jane"
    form["patient_birth_date"] = "1970-01-01"
    response = browser.post(url, data=form)
    assert response.status_code == 302, response.text[:2000]

    # DICOMweb metadata carries the corrected name for every instance.
    metadata = api.get(f"/dicomweb/studies/{study_uid}/metadata").json()
    assert len(metadata) == 2
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {"Smith^Jane"}
    # QIDO finds the new name and no longer the old one.
    assert api.get("/dicomweb/studies", params={"PatientName": "smith*"}).status_code == 200
    assert api.get("/dicomweb/studies", params={"PatientName": "smiht*"}).status_code == 204
    # The stored instance itself was rewritten ...
    instance_url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance_uids[0]}"
    current = api.get(instance_url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert pydicom.dcmread(io.BytesIO(current.content)).PatientName == "Smith^Jane"
    # ... and the original version is served with msdicom-request-original: true.
    original = api.get(
        instance_url,
        headers={"Accept": "application/dicom; transfer-syntax=*", "msdicom-request-original": "true"},
    )
    assert original.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(original.content))
    assert ds.PatientName == "Smiht^Jane"
    assert ds.PixelData == pydicom.dcmread(io.BytesIO(current.content)).PixelData
    # The change feed records an update per instance, current.
    feed = api.get("/dicomweb/changefeed", params={"includemetadata": "false"}).json()
    updates = [e for e in feed if e["Action"] == "update"]
    assert sorted(e["SopInstanceUid"] for e in updates) == sorted(instance_uids)
    assert {e["State"] for e in updates} == {"current"}
    # A second correction keeps the *first* version as the original.
    patient = Patient.objects.get(patient_id="P-42")
    url = f"/admin/archive/patient/{patient.pk}/change/"
    form = _form_fields(browser.get(url).text)
    form["patient_name"] = "Smith^Janet"
    assert browser.post(url, data=form).status_code == 302
    original = api.get(instance_url, headers={"msdicom-request-original": "true"})
    assert original.status_code == 200
    body = original.content
    assert b"Smiht^Jane" in body and b"Smith^Janet" not in body
    # The audit trail has the change, who made it and from where.
    from archive.models import AuditEvent

    change = AuditEvent.objects.filter(action="change").order_by("-id").first()
    assert change.username == "pacsadmin" and change.remote_addr == "127.0.0.1"
    assert "Smith^Janet" in change.detail


def test_study_form_correction_and_invalid_value(live_url, api):
    study_uid, _, _ = _two_instance_study(api)
    from archive.models import Study

    study = Study.objects.get(study_uid=study_uid)
    browser = login(live_url, "pacsadmin")
    url = f"/admin/archive/study/{study.pk}/change/"
    form = _form_fields(browser.get(url).text)
    form["accession_number"] = "A" * 17  # SH allows 16
    response = browser.post(url, data=form)
    # The model field allows 64, but AccessionNumber is SH: the form refuses it, nothing changes.
    assert response.status_code == 200
    assert "errornote" in response.text and "exceeds the maximum length of 16" in response.text
    assert api.get("/dicomweb/studies", params={"AccessionNumber": "A" * 17}).status_code == 204
    form["accession_number"] = "ACC-NEW"
    form["study_description"] = "Corrected description"
    assert browser.post(url, data=form).status_code == 302
    found = api.get("/dicomweb/studies", params={"AccessionNumber": "ACC-NEW", "includefield": "00081030"})
    assert found.status_code == 200
    assert found.json()[0]["00081030"]["Value"] == ["Corrected description"]


def test_user_without_write_role_cannot_correct(live_url, api):
    study_uid, _, _ = _two_instance_study(api)
    from archive.models import Study

    study = Study.objects.get(study_uid=study_uid)
    browser = login(live_url, "viewer", roles=("read",))
    url = f"/admin/archive/study/{study.pk}/change/"
    page = browser.get(url).text
    assert 'name="patient_name"' not in page  # read-only view
    response = browser.post(url, data={"patient_name": "X^Y", "csrfmiddlewaretoken": csrf(browser, url)})
    assert response.status_code == 403


@both_tiers
def test_delete_study_after_confirmation_page(live_url, api):
    study_uid, _, instance_uids = _two_instance_study(api)
    from archive.models import AuditEvent, Study

    study = Study.objects.get(study_uid=study_uid)
    browser = login(live_url, "pacsadmin")
    url = f"/admin/archive/study/{study.pk}/delete/"
    confirm = browser.get(url)
    assert confirm.status_code == 200
    assert study_uid in confirm.text and "2 instance(s)" in confirm.text  # states what goes
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 200  # nothing yet
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm.text).group(1)
    response = browser.post(url, data={"post": "yes", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 404
    feed = api.get("/dicomweb/changefeed", params={"includemetadata": "false"}).json()
    assert sorted(e["SopInstanceUid"] for e in feed if e["Action"] == "delete") == sorted(instance_uids)
    event = AuditEvent.objects.get(action="delete", source="admin")
    assert event.study_uid == study_uid and event.username == "pacsadmin"


def test_delete_series_and_instance_and_role(live_url, api):
    study_uid, series_uid, instance_uids = _two_instance_study(api)
    from archive.models import Instance, Series

    reader = login(live_url, "reader", roles=("read",))
    instance = Instance.objects.get(instance_uid=instance_uids[0])
    assert reader.get(f"/admin/archive/instance/{instance.pk}/delete/").status_code == 403
    browser = login(live_url, "pacsadmin")
    url = f"/admin/archive/instance/{instance.pk}/delete/"
    token = csrf(browser, url)
    assert browser.post(url, data={"post": "yes", "csrfmiddlewaretoken": token}).status_code == 302
    base = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances"
    assert api.get(f"{base}/{instance_uids[0]}/metadata").status_code == 404
    assert api.get(f"{base}/{instance_uids[1]}/metadata").status_code == 200
    series = Series.objects.get(series_uid=series_uid)
    url = f"/admin/archive/series/{series.pk}/delete/"
    token = csrf(browser, url)
    assert browser.post(url, data={"post": "yes", "csrfmiddlewaretoken": token}).status_code == 302
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 404


def test_patient_id_correction_moves_the_studies(live_url, api):
    study_uid, _, _ = _two_instance_study(api)
    from archive.models import Patient

    patient = Patient.objects.get(patient_id="P-42")
    browser = login(live_url, "pacsadmin")
    url = f"/admin/archive/patient/{patient.pk}/change/"
    form = _form_fields(browser.get(url).text)
    form["patient_id"] = "P-43"
    response = browser.post(url, data=form)
    assert response.status_code == 302
    found = api.get("/dicomweb/studies", params={"PatientID": "P-43"})
    assert found.status_code == 200 and found.json()[0]["0020000D"]["Value"] == [study_uid]
    assert api.get("/dicomweb/studies", params={"PatientID": "P-42"}).status_code == 204
    assert list(Patient.objects.values_list("patient_id", flat=True)) == ["P-43"]
