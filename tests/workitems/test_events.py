"""The event channel: a real WebSocket client (``websockets``) on the running ASGI server
receives the right event reports, in order, for what it subscribed to — and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import make_user
from tests.factories import new_uid
from tests.workitems.helpers import (
    FILTERED,
    GLOBAL,
    claim,
    create,
    el,
    event_channel,
    next_report,
    no_more,
    performed,
    post_json,
    put_json,
    state_body,
    summary,
)

STATE, CANCEL_REQUESTED, PROGRESS, ASSIGNED = 1, 2, 3, 5

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def watcher(live_url: str) -> Iterator[tuple[httpx.Client, str]]:
    _, key = make_user("watcher", ("worklist",))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        yield client, key


def test_workitem_subscriber_hears_every_state_change_in_order(live_url, watcher):
    ups, token = watcher
    uid = create(ups)
    with event_channel(live_url, "VIEWER", token) as ws:
        assert ups.post(f"/dicomweb/workitems/{uid}/subscribers/VIEWER").status_code == 201
        assert summary(next_report(ws)) == (STATE, uid, "SCHEDULED")  # the initial state
        transaction_uid = claim(ups, uid)
        report = next_report(ws)
        assert summary(report) == (STATE, uid, "IN PROGRESS")
        assert report["00000002"]["Value"] == ["1.2.840.10008.5.1.4.34.6.4"]
        assert report["00404041"]["Value"] == ["READY"]
        assert "00081195" not in report
        progress = {"00741002": el("SQ", {"00741004": el("DS", 50), "00741006": el("ST", "half way")})}
        url = f"/dicomweb/workitems/{uid}?transaction-uid={transaction_uid}"
        assert post_json(ups, url, progress).status_code == 200
        report = next_report(ws)
        assert summary(report)[:2] == (PROGRESS, uid)
        assert report["00741002"]["Value"][0]["00741004"]["Value"] == [50]
        assert post_json(ups, url, performed()).status_code == 200  # no event for this change
        put_json(ups, f"/dicomweb/workitems/{uid}/state", state_body("COMPLETED", transaction_uid))
        assert summary(next_report(ws)) == (STATE, uid, "COMPLETED")
        assert no_more(ws)


def test_cancel_request_reaches_the_owner_and_a_scheduled_one_passes_through_in_progress(live_url, watcher):
    ups, token = watcher
    running, waiting = create(ups), create(ups)
    claim(ups, running)
    with event_channel(live_url, "PERFORMER", token) as ws:
        for uid in (running, waiting):
            ups.post(f"/dicomweb/workitems/{uid}/subscribers/PERFORMER")
        assert [summary(next_report(ws)) for _ in range(2)] == [
            (STATE, running, "IN PROGRESS"),
            (STATE, waiting, "SCHEDULED"),
        ]
        reason = {"00741238": el("LT", "wrong patient"), "0074100C": el("PN", {"Alphabetic": "Desk^Front"})}
        assert post_json(ups, f"/dicomweb/workitems/{running}/cancelrequest", reason).status_code == 202
        report = next_report(ws)
        assert summary(report) == (CANCEL_REQUESTED, running, None)
        assert report["00741238"]["Value"] == ["wrong patient"]
        assert report["0074100C"]["Value"] == [{"Alphabetic": "Desk^Front"}]
        assert ups.post(f"/dicomweb/workitems/{waiting}/cancelrequest").status_code == 202
        assert [summary(next_report(ws)) for _ in range(2)] == [
            (STATE, waiting, "IN PROGRESS"),
            (STATE, waiting, "CANCELED"),
        ]
        assert no_more(ws)


def test_global_subscriber_hears_of_new_workitems_until_suspended_and_nothing_after_unsubscribing(
    live_url, watcher
):
    ups, token = watcher
    existing = create(ups)
    with event_channel(live_url, "DASHBOARD", token) as ws:
        assert ups.post(f"/dicomweb/workitems/{GLOBAL}/subscribers/DASHBOARD").status_code == 201
        assert summary(next_report(ws)) == (STATE, existing, "SCHEDULED")
        new = create(ups, station="CT07")
        assert summary(next_report(ws)) == (STATE, new, "SCHEDULED")
        report = next_report(ws)  # created with a scheduled station: UPS Assigned
        assert summary(report)[:2] == (ASSIGNED, new)
        assert report["00404025"]["Value"][0]["00080100"]["Value"] == ["CT07"]
        assert ups.post(f"/dicomweb/workitems/{GLOBAL}/subscribers/DASHBOARD/suspend").status_code == 200
        after_suspend = create(ups)
        claim(ups, after_suspend)  # not subscribed: never heard of
        claim(ups, new)  # still subscribed to the workitems it had
        assert summary(next_report(ws)) == (STATE, new, "IN PROGRESS")
        assert ups.delete(f"/dicomweb/workitems/{GLOBAL}/subscribers/DASHBOARD").status_code == 200
        claim(ups, existing)
        create(ups)
        assert no_more(ws, timeout=1)


def test_filtered_global_subscriber_hears_only_matching_workitems(live_url, watcher):
    ups, token = watcher
    with event_channel(live_url, "CTDESK", token) as ws:
        url = f"/dicomweb/workitems/{FILTERED}/subscribers/CTDESK"
        response = ups.post(url, params={"ScheduledStationNameCodeSequence.CodeValue": "CT*"})
        assert response.status_code == 201
        mr = create(ups, station="MR01")
        ct = create(ups, station="CT01")
        assert summary(next_report(ws)) == (STATE, ct, "SCHEDULED")
        assert summary(next_report(ws))[:2] == (ASSIGNED, ct)
        claim(ups, mr)
        claim(ups, ct)
        assert summary(next_report(ws)) == (STATE, ct, "IN PROGRESS")
        assert no_more(ws)


def test_unsubscribed_ae_and_other_aes_hear_nothing(live_url, watcher):
    ups, token = watcher
    uid = create(ups)
    with event_channel(live_url, "LEAVER", token) as leaver, event_channel(live_url, "OTHER", token) as other:
        ups.post(f"/dicomweb/workitems/{uid}/subscribers/LEAVER")
        assert summary(next_report(leaver)) == (STATE, uid, "SCHEDULED")
        assert ups.delete(f"/dicomweb/workitems/{uid}/subscribers/LEAVER").status_code == 200
        claim(ups, uid)
        assert no_more(leaver) and no_more(other)


def test_two_channels_of_one_ae_both_receive(live_url, watcher):
    ups, token = watcher
    uid = create(ups)
    with event_channel(live_url, "TWIN", token) as first, event_channel(live_url, "TWIN", token) as second:
        ups.post(f"/dicomweb/workitems/{uid}/subscribers/TWIN")
        assert summary(next_report(first)) == summary(next_report(second)) == (STATE, uid, "SCHEDULED")


def test_event_channel_refuses_bad_credentials_roles_and_ae_titles(live_url, watcher):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _, token = watcher
    _, reader = make_user("reader", ("read",))
    ws_url = live_url.replace("http://", "ws://") + "/dicomweb/subscribers/"
    for url, headers in (
        (ws_url + "VIEWER", {}),
        (ws_url + "VIEWER", {"Authorization": "Bearer nonsense"}),
        (ws_url + "VIEWER", {"Authorization": f"Bearer {reader}"}),
        (ws_url + "A" * 17, {"Authorization": f"Bearer {token}"}),
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403
    # browsers cannot set headers: ?access_token= works too
    with connect(ws_url + "VIEWER?access_token=" + token, open_timeout=10) as ws:
        assert no_more(ws, timeout=0.2)


def test_subscribing_to_an_unknown_workitem_is_404_and_sends_nothing(live_url, watcher):
    ups, token = watcher
    with event_channel(live_url, "WATCHER", token) as ws:
        response = ups.post("/dicomweb/workitems/" + new_uid() + "/subscribers/WATCHER")
        assert response.status_code == 404
        assert no_more(ws, timeout=0.2)
