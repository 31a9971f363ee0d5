"""UPS-RS through HTTP against the running server: every transaction and status code."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import make_user
from tests.factories import new_uid
from tests.workitems.helpers import (
    DICOM_JSON,
    claim,
    create,
    el,
    performed,
    post_json,
    put_json,
    state_body,
    workitem,
)

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def ups(live_url: str) -> Iterator[httpx.Client]:
    """A client with only the worklist role."""
    _, key = make_user("scheduler", ("worklist",))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        yield client


def _state(ups: httpx.Client, uid: str) -> str:
    response = ups.get(f"/dicomweb/workitems/{uid}")
    assert response.status_code == 200
    return response.json()["00741000"]["Value"][0]


# --- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_location_and_stores_the_workitem(ups, live_url):
    uid = new_uid()
    response = post_json(ups, "/dicomweb/workitems", workitem(uid))
    assert response.status_code == 201
    assert response.headers["Location"] == f"{live_url}/dicomweb/workitems/{uid}"
    assert response.headers["Content-Location"] == response.headers["Location"]
    body = ups.get(response.headers["Location"]).json()
    assert body["00080018"]["Value"] == [uid]
    assert body["00741000"]["Value"] == ["SCHEDULED"]
    assert body["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]


def test_create_with_the_uid_in_the_query(ups):
    uid = new_uid()
    response = post_json(ups, f"/dicomweb/workitems?AffectedSOPInstanceUID={uid}", workitem())
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/workitems/{uid}")
    response = post_json(ups, f"/dicomweb/workitems?{new_uid()}", workitem())  # ?{workitem}
    assert response.status_code == 201


def test_create_of_an_existing_uid_is_409(ups):
    uid = create(ups)
    assert post_json(ups, "/dicomweb/workitems", workitem(uid)).status_code == 409


def test_create_that_breaks_the_requirements_is_400_naming_each_attribute(ups):
    dataset = workitem(new_uid())
    del dataset["00741204"], dataset["00100020"]
    response = post_json(ups, "/dicomweb/workitems", dataset)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "ProcedureStepLabel (0074,1204)" in detail and "PatientID (0010,0020)" in detail


@pytest.mark.parametrize(
    ("dataset", "fragment"),
    [
        (workitem(new_uid(), **{"00741000": el("CS", "IN PROGRESS")}), "must be SCHEDULED"),
        (workitem(), "workitem UID is missing"),
        (workitem("1.2 3"), "Invalid workitem UID"),
        (workitem(new_uid(), **{"00081195": el("UI", "1.2.3")}), "TransactionUID (0008,1195)"),
    ],
)
def test_create_refuses_bad_data_sets(ups, dataset, fragment):
    response = post_json(ups, "/dicomweb/workitems", dataset)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def test_create_refuses_malformed_bodies(ups):
    bad_json = ups.post("/dicomweb/workitems", content=b"{", headers={"Content-Type": DICOM_JSON})
    assert bad_json.status_code == 400
    not_dataset = post_json(ups, "/dicomweb/workitems", {"00100010": "Doe"})
    assert not_dataset.status_code == 400
    wrong_type = ups.post("/dicomweb/workitems", content=b"x", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


def test_create_accepts_xml(ups):
    from dicomweb.dicomxml import json_to_xml

    uid = new_uid()
    response = ups.post(
        "/dicomweb/workitems",
        content=json_to_xml(workitem(uid)),
        headers={"Content-Type": "application/dicom+xml"},
    )
    assert response.status_code == 201, response.text
    assert ups.get(f"/dicomweb/workitems/{uid}").json()["00741204"]["Value"] == ["CT chest"]


def test_worklist_needs_credentials_and_the_worklist_role(live_url, anonymous, api):
    assert anonymous.get("/dicomweb/workitems").status_code == 401
    assert api.get("/dicomweb/workitems").status_code == 403  # read/write/delete but not worklist
    assert post_json(api, "/dicomweb/workitems", workitem(new_uid())).status_code == 403


# --- retrieve -------------------------------------------------------------------------------


def test_retrieve_never_returns_the_transaction_uid(ups):
    uid = create(ups)
    transaction_uid = claim(ups, uid)
    response = ups.get(f"/dicomweb/workitems/{uid}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DICOM_JSON
    assert "00081195" not in response.json()
    assert transaction_uid not in response.text
    assert response.json()["00741000"]["Value"] == ["IN PROGRESS"]


def test_retrieve_as_xml(ups):
    uid = create(ups)
    response = ups.get(f"/dicomweb/workitems/{uid}", headers={"Accept": "application/dicom+xml"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/dicom+xml"
    assert b'tag="00741000"' in response.content and b"SCHEDULED" in response.content


def test_retrieve_unknown_is_404_and_malformed_is_400_and_unacceptable_is_406(ups):
    assert ups.get(f"/dicomweb/workitems/{new_uid()}").status_code == 404
    assert ups.get("/dicomweb/workitems/not-a-uid!").status_code == 400
    assert ups.get(f"/dicomweb/workitems/{new_uid()}", headers={"Accept": "image/png"}).status_code == 406


# --- update ---------------------------------------------------------------------------------


def test_update_of_a_scheduled_workitem(ups):
    uid = create(ups)
    response = post_json(ups, f"/dicomweb/workitems/{uid}", {"00741204": el("LO", "CT chest, contrast")})
    assert response.status_code == 200
    assert ups.get(f"/dicomweb/workitems/{uid}").json()["00741204"]["Value"] == ["CT chest, contrast"]


def test_update_of_a_scheduled_workitem_with_a_transaction_uid_is_400(ups):
    uid = create(ups)
    response = post_json(
        ups, f"/dicomweb/workitems/{uid}?transaction-uid={new_uid()}", {"00741204": el("LO", "x")}
    )
    assert response.status_code == 400


def test_update_in_progress_needs_the_owners_transaction_uid(ups):
    uid = create(ups)
    transaction_uid = claim(ups, uid)
    change = {"00741204": el("LO", "new")}
    assert post_json(ups, f"/dicomweb/workitems/{uid}", change).status_code == 400
    assert post_json(ups, f"/dicomweb/workitems/{uid}?transaction-uid={new_uid()}", change).status_code == 400
    assert (
        post_json(ups, f"/dicomweb/workitems/{uid}?transaction-uid={transaction_uid}", change).status_code
        == 200
    )
    assert ups.get(f"/dicomweb/workitems/{uid}").json()["00741204"]["Value"] == ["new"]


def test_update_replaces_sequences_whole(ups):
    uid = create(ups)
    new_request = el(
        "SQ", {"0020000D": el("UI", "1.2.9"), "00080050": el("SH", "ACC-NEW"), "00401001": el("SH", "RP")}
    )
    assert post_json(ups, f"/dicomweb/workitems/{uid}", {"0040A370": new_request}).status_code == 200
    items = ups.get(f"/dicomweb/workitems/{uid}").json()["0040A370"]["Value"]
    assert items == new_request["Value"]
    # and search follows the new value
    assert (
        ups.get(
            "/dicomweb/workitems", params={"ReferencedRequestSequence.AccessionNumber": "ACC-NEW"}
        ).status_code
        == 200
    )
    assert (
        ups.get(
            "/dicomweb/workitems", params={"ReferencedRequestSequence.AccessionNumber": "ACC-1"}
        ).status_code
        == 204
    )


def test_update_cannot_set_the_state_or_touch_a_finished_workitem(ups):
    uid = create(ups)
    response = post_json(ups, f"/dicomweb/workitems/{uid}", {"00741000": el("CS", "COMPLETED")})
    assert response.status_code == 400 and "ProcedureStepState" in response.json()["detail"]
    assert ups.post(f"/dicomweb/workitems/{uid}/cancelrequest").status_code == 202
    assert post_json(ups, f"/dicomweb/workitems/{uid}", {"00741204": el("LO", "x")}).status_code == 400


def test_update_of_an_unknown_workitem_is_404(ups):
    assert post_json(ups, f"/dicomweb/workitems/{new_uid()}", {"00741204": el("LO", "x")}).status_code == 404


# --- change state ---------------------------------------------------------------------------


def test_claim_then_complete(ups):
    uid = create(ups)
    transaction_uid = claim(ups, uid)
    assert _state(ups, uid) == "IN PROGRESS"
    url = f"/dicomweb/workitems/{uid}/state"
    # completing needs the final-state attributes first
    response = put_json(ups, url, state_body("COMPLETED", transaction_uid))
    assert response.status_code == 400
    assert "UnifiedProcedureStepPerformedProcedureSequence (0074,1216)" in response.json()["detail"]
    assert (
        post_json(
            ups, f"/dicomweb/workitems/{uid}?transaction-uid={transaction_uid}", performed()
        ).status_code
        == 200
    )
    assert put_json(ups, url, state_body("COMPLETED", transaction_uid)).status_code == 200
    assert _state(ups, uid) == "COMPLETED"
    again = put_json(ups, url, state_body("COMPLETED", transaction_uid))
    assert (
        again.status_code == 200 and "already in the requested state of COMPLETED" in again.headers["Warning"]
    )


def test_claim_of_a_claimed_workitem_is_409_and_wrong_owner_is_400(ups):
    uid = create(ups)
    claim(ups, uid)
    url = f"/dicomweb/workitems/{uid}/state"
    assert put_json(ups, url, state_body("IN PROGRESS", new_uid())).status_code == 409
    assert put_json(ups, url, state_body("CANCELED", new_uid())).status_code == 400
    assert put_json(ups, url, state_body("CANCELED", None)).status_code == 400  # missing Transaction UID


def test_owner_cancels_and_scp_fills_the_cancellation_time(ups):
    uid = create(ups)
    transaction_uid = claim(ups, uid)
    url = f"/dicomweb/workitems/{uid}/state"
    assert put_json(ups, url, state_body("CANCELED", transaction_uid)).status_code == 200
    body = ups.get(f"/dicomweb/workitems/{uid}").json()
    assert body["00741000"]["Value"] == ["CANCELED"]
    assert body["00741002"]["Value"][0]["00404052"]["Value"][0][:2] == "20"
    again = put_json(ups, url, state_body("CANCELED", transaction_uid))
    assert (
        again.status_code == 200 and "already in the requested state of CANCELED" in again.headers["Warning"]
    )
    assert put_json(ups, url, state_body("IN PROGRESS", new_uid())).status_code == 409
    assert put_json(ups, url, state_body("COMPLETED", transaction_uid)).status_code == 409


@pytest.mark.parametrize(
    ("state", "status"), [("COMPLETED", 400), ("CANCELED", 400), ("SCHEDULED", 400), ("DONE", 400)]
)
def test_change_state_of_a_scheduled_workitem(ups, state, status):
    uid = create(ups)
    assert (
        put_json(ups, f"/dicomweb/workitems/{uid}/state", state_body(state, new_uid())).status_code == status
    )
    assert _state(ups, uid) == "SCHEDULED"


def test_change_state_bad_requests(ups):
    uid = create(ups)
    url = f"/dicomweb/workitems/{uid}/state"
    assert put_json(ups, url, {"00081195": el("UI", new_uid())}).status_code == 400  # no state
    assert put_json(ups, url, state_body("IN PROGRESS", "not a uid")).status_code == 400
    assert (
        put_json(
            ups, f"/dicomweb/workitems/{new_uid()}/state", state_body("IN PROGRESS", new_uid())
        ).status_code
        == 404
    )
    assert ups.get(url).status_code == 405


# --- request cancellation -------------------------------------------------------------------


def test_cancel_request_of_a_scheduled_workitem_cancels_it(ups):
    uid = create(ups)
    reason = {"00741238": el("LT", "patient left")}
    response = post_json(ups, f"/dicomweb/workitems/{uid}/cancelrequest", reason)
    assert response.status_code == 202
    body = ups.get(f"/dicomweb/workitems/{uid}").json()
    assert body["00741000"]["Value"] == ["CANCELED"]
    assert body["00741002"]["Value"][0]["00741238"]["Value"] == ["patient left"]
    again = ups.post(f"/dicomweb/workitems/{uid}/cancelrequest")
    assert again.status_code == 202
    assert again.headers["Warning"] == '299 archway "The UPS is already in the requested state of CANCELED"'


def test_cancel_request_of_a_completed_workitem_is_409(ups):
    uid = create(ups)
    transaction_uid = claim(ups, uid)
    post_json(ups, f"/dicomweb/workitems/{uid}?transaction-uid={transaction_uid}", performed())
    put_json(ups, f"/dicomweb/workitems/{uid}/state", state_body("COMPLETED", transaction_uid))
    assert ups.post(f"/dicomweb/workitems/{uid}/cancelrequest").status_code == 409


def test_cancel_request_of_in_progress_without_any_subscriber_is_409(ups):
    uid = create(ups)
    claim(ups, uid)
    response = ups.post(f"/dicomweb/workitems/{uid}/cancelrequest")
    assert response.status_code == 409 and "performer cannot be contacted" in response.json()["detail"]
    assert _state(ups, uid) == "IN PROGRESS"


def test_cancel_request_of_in_progress_with_a_subscriber_is_202_and_leaves_it_to_the_owner(ups):
    uid = create(ups)
    claim(ups, uid)
    assert ups.post(f"/dicomweb/workitems/{uid}/subscribers/PERFORMER").status_code == 201
    assert ups.post(f"/dicomweb/workitems/{uid}/cancelrequest").status_code == 202
    assert _state(ups, uid) == "IN PROGRESS"


def test_cancel_request_errors(ups):
    assert ups.post(f"/dicomweb/workitems/{new_uid()}/cancelrequest").status_code == 404
    uid = create(ups)
    bad = ups.post(
        f"/dicomweb/workitems/{uid}/cancelrequest", content=b"{", headers={"Content-Type": DICOM_JSON}
    )
    assert bad.status_code == 400


# --- search ---------------------------------------------------------------------------------


@pytest.fixture
def worklist(ups) -> dict[str, str]:
    return {
        "doe": create(
            ups,
            patient_name="Doe^John",
            patient_id="P-100",
            accession="A-1",
            station="CT01",
            start="20240301090000",
        ),
        "muller": create(
            ups,
            patient_name="Müller^Jürgen",
            patient_id="P-200",
            accession="A-2",
            station="MR01",
            start="20240302140000",
        ),
        "roe": create(
            ups,
            patient_name="Roe^Jane",
            patient_id="Q-300",
            accession="B-3",
            station="CT02",
            start="20240315080000",
        ),
    }


def _found(ups, **params) -> set[str]:
    response = ups.get("/dicomweb/workitems", params=params)
    if response.status_code == 204:
        return set()
    assert response.status_code == 200, response.text
    return {item["00080018"]["Value"][0] for item in response.json()}


def test_search_by_each_searchable_attribute(ups, worklist):
    doe, muller, roe = worklist["doe"], worklist["muller"], worklist["roe"]
    assert _found(ups, PatientID="P-100") == {doe}
    assert _found(ups, PatientID="P-*") == {doe, muller}
    assert _found(ups, PatientID="?-300") == {roe}
    assert _found(ups, PatientName="MULLER^JURGEN") == {muller}  # accent- and case-insensitive
    assert _found(ups, PatientName="doe*") == {doe}
    assert _found(ups, PatientName="ju mu", fuzzymatching="true") == {muller}
    assert _found(ups, PatientName="ohn", fuzzymatching="true") == set()
    assert _found(ups, **{"ReferencedRequestSequence.AccessionNumber": "A-2"}) == {muller}
    assert _found(ups, **{"0040A370.00080050": "A*"}) == {doe, muller}
    assert _found(ups, **{"ReferencedRequestSequence.RequestedProcedureID": "RP-B-3"}) == {roe}
    assert _found(ups, **{"ScheduledStationNameCodeSequence.CodeValue": "CT*"}) == {doe, roe}
    assert _found(ups, **{"ScheduledStationClassCodeSequence.CodeValue": "CT"}) >= {doe, muller, roe}
    assert _found(ups, **{"ScheduledStationGeographicLocationCodeSequence.CodeValue": "EAST"}) >= {doe, roe}
    assert _found(ups, ScheduledProcedureStepStartDateTime="20240301-20240302") == {doe, muller}
    assert _found(ups, ScheduledProcedureStepStartDateTime="20240310-") >= {roe}
    assert doe not in _found(ups, ScheduledProcedureStepStartDateTime="20240310-")
    assert _found(ups, ScheduledProcedureStepStartDateTime="-20240301120000") >= {doe}
    assert _found(ups, ScheduledProcedureStepStartDateTime="20240302140000") == {muller}
    assert _found(ups, StudyInstanceUID="1.2.3.4", PatientID="Q-300") == {roe}
    claim(ups, roe)
    assert _found(ups, ProcedureStepState="IN PROGRESS", PatientID="Q-300") == {roe}
    assert _found(ups, ProcedureStepState="SCHEDULED", PatientID="Q-300") == set()


def test_search_results_include_fields_and_never_the_transaction_uid(ups, worklist):
    claim(ups, worklist["doe"])
    response = ups.get("/dicomweb/workitems", params={"PatientID": "P-100"})
    (item,) = response.json()
    assert item["00741000"]["Value"] == ["IN PROGRESS"]
    assert "00081195" not in item and "00404021" not in item
    assert item["00081190"]["Value"][0].endswith(f"/workitems/{worklist['doe']}")
    (item,) = ups.get("/dicomweb/workitems", params={"PatientID": "P-100", "includefield": "00404021"}).json()
    assert "00404021" in item
    (item,) = ups.get("/dicomweb/workitems", params={"PatientID": "P-100", "includefield": "all"}).json()
    assert "00380010" in item and "00081195" not in item


def test_search_paging(ups, worklist):
    ids = [
        item["00080018"]["Value"][0] for item in ups.get("/dicomweb/workitems", params={"limit": 4000}).json()
    ]
    assert len(ids) == 3
    first = ups.get("/dicomweb/workitems", params={"limit": 2}).json()
    rest = ups.get("/dicomweb/workitems", params={"limit": 2, "offset": 2}).json()
    assert [i["00080018"]["Value"][0] for i in first + rest] == ids
    assert ups.get("/dicomweb/workitems", params={"offset": 3}).status_code == 204


def test_search_as_xml(ups, worklist):
    response = ups.get(
        "/dicomweb/workitems",
        params={"PatientID": "P-100"},
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom+xml"')
    assert b"P-100" in response.content


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "4001"},
        {"offset": "-1"},
        {"PatientID": ""},
        {"Modality": "CT"},
        {"NoSuchKeyword": "x"},
        {"ScheduledProcedureStepStartDateTime": "-"},
        {"ScheduledProcedureStepStartDateTime": "2024x"},
        {"ScheduledProcedureStepStartDateTime": "20240302-20240301"},
        {"ProcedureStepState": "DONE"},
        {"StudyInstanceUID": "1.2 x"},
        {"fuzzymatching": "maybe"},
        {"includefield": "ReferencedRequestSequence.AccessionNumber"},
    ],
)
def test_search_bad_parameters_are_400(ups, params):
    response = ups.get("/dicomweb/workitems", params=params)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_search_with_nothing_stored_is_204(ups):
    assert ups.get("/dicomweb/workitems").status_code == 204


# --- subscriptions (HTTP side; delivery is in test_events.py) --------------------------------


def test_subscription_status_codes(ups):
    uid = create(ups)
    base = f"/dicomweb/workitems/{uid}/subscribers"
    assert ups.post(f"{base}/VIEWER").status_code == 201
    assert ups.post(f"{base}/VIEWER?deletionlock=true").status_code == 201
    assert ups.post(f"{base}/VIEWER?deletionlock=perhaps").status_code == 400
    assert ups.post(f"{base}/{'A' * 17}").status_code == 400
    assert ups.post(f"{base}/VIEWER?PatientID=x").status_code == 400  # match keys only for filtered global
    assert ups.post(f"/dicomweb/workitems/{new_uid()}/subscribers/VIEWER").status_code == 404
    assert ups.delete(f"{base}/VIEWER").status_code == 200
    assert ups.post(f"{base}/VIEWER/suspend").status_code == 400  # only global subscriptions
    assert (
        ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER/suspend").status_code == 404
    )
    assert ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER").status_code == 201
    assert (
        ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER/suspend").status_code == 200
    )
    assert ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5.1/subscribers/VIEWER").status_code == 400
    assert (
        ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5.1/subscribers/VIEWER?Modality=CT").status_code
        == 400
    )
    assert (
        ups.post("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5.1/subscribers/VIEWER?PatientID=P*").status_code
        == 201
    )
    assert ups.delete("/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER").status_code == 200


def test_event_channel_over_plain_http_is_426(ups):
    response = ups.get("/dicomweb/subscribers/VIEWER")
    assert response.status_code == 426 and response.headers["Upgrade"] == "websocket"


def test_deletion_lock_keeps_a_finished_workitem_until_released(ups, settings):
    settings.ARCHWAY_UPS_RETENTION_SECONDS = 0
    locked, unlocked = create(ups), create(ups)
    assert ups.post(f"/dicomweb/workitems/{locked}/subscribers/ARCHIVER?deletionlock=true").status_code == 201
    assert ups.post(f"/dicomweb/workitems/{unlocked}/subscribers/ARCHIVER").status_code == 201
    for uid in (locked, unlocked):
        assert ups.post(f"/dicomweb/workitems/{uid}/cancelrequest").status_code == 202
    assert ups.get(f"/dicomweb/workitems/{unlocked}").status_code == 404  # gone at once (retention 0)
    assert _state(ups, locked) == "CANCELED"  # kept for the locking subscriber
    assert ups.delete(f"/dicomweb/workitems/{locked}/subscribers/ARCHIVER").status_code == 200
    assert ups.get(f"/dicomweb/workitems/{locked}").status_code == 404


def test_capabilities_list_the_worklist_resources(anonymous):
    response = anonymous.options("/dicomweb", headers={"Accept": "application/json"})
    assert response.status_code == 200
    resources = {r["path"]: r for r in json.loads(response.content)["resources"]}
    for path in (
        "/workitems",
        "/workitems/{workitem}",
        "/workitems/{workitem}/state",
        "/workitems/{workitem}/cancelrequest",
        "/workitems/{workitem}/subscribers/{ae_title}",
        "/workitems/{workitem}/subscribers/{ae_title}/suspend",
        "/subscribers/{ae_title}",
    ):
        assert path in resources, path
    operations = {m["operation"] for m in resources["/workitems"]["methods"]}
    assert operations == {"Search Workitems (UPS-RS)", "Create Workitem (UPS-RS)"}
    search = next(m for m in resources["/workitems"]["methods"] if m["name"] == "GET")
    assert "ScheduledProcedureStepStartDateTime" in search["queryParameters"]
