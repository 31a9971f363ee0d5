"""The worklist in the admin: list, search, read-only detail, UPS actions, roles, audit.

Every action's effect is checked where a UPS-RS client would see it: ``GET
/dicomweb/workitems/{uid}`` and the event reports sent to subscribers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.admin.support import csrf, login
from tests.conftest import make_user
from tests.factories import new_uid
from tests.workitems.helpers import DICOM_JSON, code, el, put_json, state_body, workitem

LIST = "/admin/workitems/workitem/"


def _create(**kwargs) -> object:
    from workitems import services

    return services.create(workitem(new_uid(), **kwargs))


def _change_url(item) -> str:
    return f"{LIST}{item.pk}/change/"


def _action_url(item, name: str) -> str:
    return f"{LIST}{item.pk}/action/{name}/"


def _messages(page: str) -> str:
    found = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""


def _act(browser: httpx.Client, item, name: str, **data: str) -> str:
    """POST one action as the page would (confirmed), follow the redirect, return the messages."""
    token = csrf(browser, _change_url(item))
    response = browser.post(
        _action_url(item, name), data={"csrfmiddlewaretoken": token, "confirmed": "yes", **data}
    )
    assert response.status_code == 302, response.text[:2000]
    page = browser.get(response.headers["location"])
    assert page.status_code == 200
    return _messages(page.text)


def _ups(ups: httpx.Client, item) -> dict:
    response = ups.get(f"/dicomweb/workitems/{item.workitem_uid}", headers={"Accept": DICOM_JSON})
    assert response.status_code == 200, response.text
    body = response.json()
    return body[0] if isinstance(body, list) else body


def _state(ups: httpx.Client, item) -> str:
    return _ups(ups, item)["00741000"]["Value"][0]


def _buttons(page: str) -> set[str]:
    return set(re.findall(r'id="action-([a-z-]+)"', page))


@pytest.fixture
def ups(live_url: str) -> Iterator[httpx.Client]:
    """A UPS-RS client (the worklist role), to see what the admin's actions did."""
    _, key = make_user("modality", ("worklist",))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        yield client


@pytest.fixture
def nurse(live_url: str) -> httpx.Client:
    return login(live_url, "nurse", roles=("worklist",))


@pytest.fixture
def reports(monkeypatch) -> list[tuple[list[str], list[dict]]]:
    """Event reports as delivered after commit (the server runs in this process)."""
    from workitems import events

    sent: list[tuple[list[str], list[dict]]] = []
    monkeypatch.setattr(events, "send_now", lambda titles, rs: sent.append((list(titles), list(rs))))
    return sent


def _event_types(sent) -> list[tuple[int, str | None]]:
    return [
        (r["00001002"]["Value"][0], (r.get("00741000") or {}).get("Value", [None])[0])
        for _, batch in sent
        for r in batch
    ]


# --- list ----------------------------------------------------------------------------------


def test_list_columns_filter_search_and_newest_first(live_url, nurse, ups):
    first = _create(
        patient_name="Müller^Hans", patient_id="P-MUELLER", station="CT01", start="20240301090000"
    )
    second = _create(
        patient_name="Doe^Jane",
        patient_id="P-DOE",
        start="20240302143000",
        label="MR knee",
        **{"00404025": el("SQ", code("MR02", meaning="MR scanner 2"))},
    )
    put_json(ups, f"/dicomweb/workitems/{first.workitem_uid}/state", state_body("IN PROGRESS", new_uid()))
    page = nurse.get(LIST).text
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="result_list"')[1].split("</table>")[0], re.S)[1:]
    texts = [html.unescape(re.sub(r"<[^>]+>", "|", row)) for row in rows]
    assert len(texts) == 2
    # newest first: the claimed workitem was updated last
    assert "IN PROGRESS" in texts[0] and "Müller, Hans" in texts[0] and "P-MUELLER" in texts[0]
    assert "2024-03-01 09:00" in texts[0] and "CT01" in texts[0] and "CT chest" in texts[0]
    assert "SCHEDULED" in texts[1] and "Doe, Jane" in texts[1] and "2024-03-02 14:30" in texts[1]
    assert "MR scanner 2 (MR02)" in texts[1] and "MR knee" in texts[1]
    assert "Worklist</a>" in page  # the header link, for the worklist role

    def shown(query: str) -> set[str]:
        body = nurse.get(LIST + query).text
        return {
            uid for uid in (first.workitem_uid, second.workitem_uid) if f"{LIST}{_pk(uid)}/change/" in body
        }

    def _pk(uid: str) -> int:
        return first.pk if uid == first.workitem_uid else second.pk

    assert shown("?state__exact=IN+PROGRESS") == {first.workitem_uid}
    assert shown("?state__exact=SCHEDULED") == {second.workitem_uid}
    assert shown("?q=hans+muller") == {first.workitem_uid}  # any order, accents and case ignored
    assert shown("?q=mull") == {first.workitem_uid}  # word starts
    assert shown("?q=p-doe") == {second.workitem_uid}  # patient ID, case-insensitive
    assert shown(f"?q={second.workitem_uid}") == {second.workitem_uid}
    assert shown("?q=nobody") == set()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query", ["", "?q=doe", "?state__exact=SCHEDULED", "?o=2"])
def test_list_costs_the_same_queries_for_3_or_15_workitems(client, dicom_storage, query):
    """No per-row queries: patient, station and label come from the row's own data set."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user, _ = make_user("nurse", ("worklist",))
    user.is_staff = True
    user.save()
    client.force_login(user)
    for n in range(3):
        _create(patient_id=f"P-{n}")
    with CaptureQueriesContext(connection) as small:
        assert client.get(LIST + query).status_code == 200
    for n in range(12):
        _create(patient_id=f"Q-{n}")
    with CaptureQueriesContext(connection) as large:
        response = client.get(LIST + query)
    assert response.status_code == 200 and response.content.count(b"/change/") >= 15
    assert len(large.captured_queries) == len(small.captured_queries), [
        q["sql"] for q in large.captured_queries
    ]
    assert len(large.captured_queries) <= 12


# --- detail -----------------------------------------------------------------------------------


def test_detail_is_read_only_shows_the_data_set_and_never_the_transaction_uid(live_url, nurse, ups):
    item = _create(patient_name="Nowak^Zoë", patient_id="P-NOWAK")
    transaction_uid = new_uid()
    put_json(
        ups, f"/dicomweb/workitems/{item.workitem_uid}/state", state_body("IN PROGRESS", transaction_uid)
    )
    page = nurse.get(_change_url(item)).text
    assert transaction_uid not in page and "00081195" not in page and "TransactionUID" not in page
    table = page.split('id="dataset-table"')[1].split("</table>")[0]
    assert "(0010,0010)" in table and "PatientName" in table and "Nowak, Zoë" in table
    assert "ScheduledStationNameCodeSequence" in table and "1 item(s)" in table
    # the code item's attributes are indented below their sequence
    assert re.search(r'padding-left: 3\.0em">CodeValue</td><td>SH</td><td>CT01<', table)
    assert "2024-03-01 09:00" in table  # ScheduledProcedureStepStartDateTime, readable
    assert "another performer" in page
    assert _buttons(page) == {"request-cancel"}  # not the admin's: it may only ask
    assert 'name="_save"' not in page  # view-only: no save button
    token = csrf(nurse, _change_url(item))
    assert nurse.post(_change_url(item), data={"csrfmiddlewaretoken": token}).status_code == 403
    assert nurse.get(f"{LIST}add/").status_code == 403
    assert nurse.get(f"{LIST}{item.pk}/delete/").status_code == 403
    from archive.models import AuditEvent

    viewed = AuditEvent.objects.filter(action="view", instance_uid=item.workitem_uid)
    assert viewed.exists() and {(e.username, e.source) for e in viewed} == {("nurse", "admin")}


# --- actions ----------------------------------------------------------------------------------


def test_claim_then_complete_through_the_ups_state_machine(live_url, nurse, ups, reports):
    from workitems import services
    from workitems.adminactions import ADMIN_TRANSACTION_PREFIX
    from workitems.models import Workitem

    item = _create(patient_name="Claim^Me")
    services.subscribe(item.workitem_uid, "VIEWER1")
    reports.clear()
    assert _buttons(nurse.get(_change_url(item)).text) == {"claim", "request-cancel"}
    message = _act(nurse, item, "claim")
    assert "Claim: the workitem is now IN PROGRESS" in message
    assert _state(ups, item) == "IN PROGRESS"
    lock = Workitem.objects.get(pk=item.pk).transaction_uid
    assert lock.startswith(ADMIN_TRANSACTION_PREFIX) and len(lock) <= 64
    page = nurse.get(_change_url(item)).text
    assert lock not in page and "the admin (claimed here" in page
    assert _buttons(page) == {"complete", "cancel"}
    started = _ups(ups, item)["00741216"]["Value"][0]
    assert started["00404050"]["Value"][0]  # the performed procedure's start, recorded at claim
    assert {tuple(titles) for titles, _ in reports} == {("VIEWER1",)}
    assert (1, "IN PROGRESS") in _event_types(reports)
    # an external performer cannot take it over, and nobody else's lock is needed or shown
    taken = put_json(
        ups, f"/dicomweb/workitems/{item.workitem_uid}/state", state_body("COMPLETED", new_uid())
    )
    assert taken.status_code == 400
    # Complete asks first (GET shows a confirmation page, changes nothing)
    confirm = nurse.get(_action_url(item, "complete"))
    assert confirm.status_code == 200 and "cannot be reopened" in confirm.text
    assert _state(ups, item) == "IN PROGRESS"
    message = _act(nurse, item, "complete")
    assert "Complete: the workitem is now COMPLETED" in message
    dataset = _ups(ups, item)
    assert dataset["00741000"]["Value"] == ["COMPLETED"] and "00081195" not in dataset
    performed = dataset["00741216"]["Value"][0]
    assert performed["00404050"] == started["00404050"]  # kept
    assert performed["00404051"]["Value"][0]  # end date-time filled by the admin's N-SET
    assert {"00404028", "00404019", "00404033"} <= performed.keys()
    assert (1, "COMPLETED") in _event_types(reports)
    assert _buttons(nurse.get(_change_url(item)).text) == set()
    from archive.models import AuditEvent

    changes = list(AuditEvent.objects.filter(action="change", instance_uid=item.workitem_uid).order_by("id"))
    assert [e.detail.split(":")[0] for e in changes] == [
        f"claim workitem {item.workitem_uid}",
        f"complete workitem {item.workitem_uid}",
    ]
    assert "SCHEDULED → IN PROGRESS" in changes[0].detail and "IN PROGRESS → COMPLETED" in changes[1].detail
    assert {e.username for e in changes} == {"nurse"} and {e.status for e in changes} == {200}
    assert all(lock not in e.detail and lock not in e.path for e in changes)


def test_complete_that_cannot_meet_the_final_state_changes_nothing(live_url, nurse, ups, reports):
    from workitems.models import Workitem

    item = _create()
    _act(nurse, item, "claim")
    # Legacy data: the label (Type 1 at COMPLETED) is missing; N-SET could never empty it.
    row = Workitem.objects.get(pk=item.pk)
    row.dataset = {k: v for k, v in row.dataset.items() if k != "00741204"}
    row.save(update_fields=["dataset"])
    before = _ups(ups, item)
    reports.clear()
    message = _act(nurse, item, "complete")
    assert "Complete failed" in message and "ProcedureStepLabel (0074,1204)" in message
    assert "0xC304" in message and "HTTP 400" in message
    after = _ups(ups, item)
    assert after == before  # nothing half-done: no end date-time either
    assert "00404051" not in after["00741216"]["Value"][0]
    assert reports == []  # no event for what did not happen
    from archive.models import AuditEvent

    failed = (
        AuditEvent.objects.filter(action="change", instance_uid=item.workitem_uid).order_by("-id").first()
    )
    assert failed.status == 400 and "failed" in failed.detail and "0xC304" in failed.detail


def test_cancel_by_the_admin_as_owner_with_a_reason(live_url, nurse, ups):
    item = _create()
    _act(nurse, item, "claim")
    confirm = nurse.get(_action_url(item, "cancel")).text
    assert "Reason for cancellation" in confirm
    message = _act(nurse, item, "cancel", reason="Patient left")
    assert "Cancel: the workitem is now CANCELED" in message
    dataset = _ups(ups, item)
    progress = dataset["00741002"]["Value"][0]
    assert dataset["00741000"]["Value"] == ["CANCELED"]
    assert progress["00741238"]["Value"] == ["Patient left"] and progress["00404052"]["Value"][0]


def test_request_cancellation_of_scheduled_and_in_progress(live_url, nurse, ups, reports):
    from workitems import services

    scheduled = _create()
    assert "the workitem is now CANCELED" in _act(
        nurse, scheduled, "request-cancel", reason="Duplicate order"
    )
    assert _state(ups, scheduled) == "CANCELED"
    # IN PROGRESS elsewhere, nobody subscribed: nobody can be told (0xC312, HTTP 409)
    busy = _create()
    put_json(ups, f"/dicomweb/workitems/{busy.workitem_uid}/state", state_body("IN PROGRESS", new_uid()))
    message = _act(nurse, busy, "request-cancel")
    assert "Request cancellation failed" in message and "0xC312" in message and "HTTP 409" in message
    assert _state(ups, busy) == "IN PROGRESS"
    # with a subscriber, the performer's side hears a Cancel Requested event; the state stays
    services.subscribe(busy.workitem_uid, "MODALITY1")
    reports.clear()
    message = _act(nurse, busy, "request-cancel", reason="Wrong patient")
    assert "Cancellation requested: 1 subscriber(s)" in message and "HTTP 202" in message
    assert _state(ups, busy) == "IN PROGRESS"
    (titles, batch), *_ = reports
    assert titles == ["MODALITY1"] and batch[0]["00001002"]["Value"] == [2]
    assert batch[0]["00741238"]["Value"] == ["Wrong patient"] and batch[0]["0074100C"]["Value"] == ["nurse"]


def test_actions_the_state_table_refuses_are_errors_not_changes(live_url, nurse, ups):
    item = _create()
    put_json(ups, f"/dicomweb/workitems/{item.workitem_uid}/state", state_body("IN PROGRESS", new_uid()))
    # not the admin's workitem: it never sends someone else's lock (0xC301)
    message = _act(nurse, item, "complete")
    assert "Complete failed" in message and "0xC301" in message
    # a stale page: claiming what is already IN PROGRESS (0xC302, HTTP 409)
    message = _act(nurse, item, "claim")
    assert "Claim failed" in message and "0xC302" in message and "HTTP 409" in message
    assert _state(ups, item) == "IN PROGRESS"
    # a GET never acts; an unknown action is refused
    assert nurse.get(_action_url(item, "claim")).status_code == 302
    token = csrf(nurse, _change_url(item))
    assert nurse.post(_action_url(item, "reopen"), data={"csrfmiddlewaretoken": token}).status_code == 404
    # without the CSRF token nothing happens
    assert nurse.post(_action_url(item, "complete"), data={"confirmed": "yes"}).status_code == 403


def test_only_the_worklist_role_sees_and_acts(live_url, ups):
    item = _create()
    reader = login(live_url, "reader", roles=("read", "write", "delete"))
    assert reader.get(LIST).status_code == 403
    assert reader.get(_change_url(item)).status_code == 403
    index = reader.get("/admin/").text
    assert "Worklist</a>" not in index and "/admin/workitems/" not in index
    token = csrf(reader, "/admin/archive/study/")
    response = reader.post(_action_url(item, "claim"), data={"csrfmiddlewaretoken": token})
    assert response.status_code == 403 and _state(ups, item) == "SCHEDULED"
    from django.contrib.auth.models import User

    User.objects.create_superuser("root-user", password="pw-root-user")
    boss = httpx.Client(base_url=live_url, timeout=60)
    page = boss.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    boss.post(
        "/admin/login/",
        data={"username": "root-user", "password": "pw-root-user", "csrfmiddlewaretoken": token},
    )
    assert boss.get(LIST).status_code == 200
    anonymous = httpx.Client(base_url=live_url, timeout=60)
    assert anonymous.get(LIST).status_code == 302  # to the login page
