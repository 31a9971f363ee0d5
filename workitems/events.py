"""UPS event reports (PS3.4 CC.2.4, PS3.18 §11.x event channel) and their fan-out.

Each report is a DICOM JSON data set sent as one WebSocket text frame to every
subscribed AE. Fan-out uses the Channels layer: one group per AE title, which every
open event channel of that AE joins, so an event raised in one server process reaches
a client connected to another (Redis layer). Reports are sent after the database commit
(``transaction.on_commit``) in the order they were raised, so a client never hears of
a state the database could still roll back, and hears of states in the order they happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

UPS_EVENT_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.4"
# Event Type IDs (PS3.4 Table CC.2.4-1)
STATE_REPORT = 1
CANCEL_REQUESTED = 2
PROGRESS_REPORT = 3
SCP_STATUS_CHANGE = 4
ASSIGNED = 5
GLOBAL_UPS_UIDS = ("1.2.840.10008.5.1.4.34.5", "1.2.840.10008.5.1.4.34.5.1")
MESSAGE_TYPE = "ups.event"


def ae_group(ae_title: str) -> str:
    """The channel-layer group of an AE (group names are ASCII; AE titles may not be)."""
    return "ups.ae." + ae_title.strip().encode("utf-8").hex()


def _element(vr: str, value) -> dict:
    if value in (None, "", []):
        return {"vr": vr}
    return {"vr": vr, "Value": value if isinstance(value, list) else [value]}


def report(workitem_uid: str, event_type: int, attributes: dict) -> dict:
    """The event report data set: command fields (group 0000) plus the event information."""
    dataset = {
        "00000002": _element("UI", UPS_EVENT_SOP_CLASS),  # Affected SOP Class UID
        "00001000": _element("UI", workitem_uid),  # Affected SOP Instance UID
        "00001002": _element("US", event_type),  # Event Type ID
    }
    dataset.update(attributes)
    return dict(sorted(dataset.items()))


def state_report(workitem_uid: str, dataset: dict, state: str, extra: dict | None = None) -> dict:
    """UPS State Report: the new state and the input readiness (CC.2.4.2, Event Type 1)."""
    attributes = {
        "00741000": _element("CS", state),
        "00404041": dataset.get("00404041") or _element("CS", None),
    }
    attributes.update(extra or {})
    return report(workitem_uid, STATE_REPORT, attributes)


def cancel_requested(workitem_uid: str, request: dict, requesting_ae: str | None) -> dict:
    """UPS Cancel Requested (Event Type 2): who asked and why, as they sent it."""
    attributes = {
        key: request[key]
        for key in ("00741238", "0074100E", "0074100A", "0074100C")  # reason, code seq, contact URI/name
        if key in request
    }
    if requesting_ae:
        attributes["00741236"] = _element("AE", requesting_ae)
    return report(workitem_uid, CANCEL_REQUESTED, attributes)


def progress_report(workitem_uid: str, dataset: dict) -> dict:
    """UPS Progress Report (Event Type 3): the progress information sequence as it now is."""
    return report(
        workitem_uid,
        PROGRESS_REPORT,
        {
            "00741002": dataset.get("00741002") or {"vr": "SQ"},
            "00741000": dataset.get("00741000") or _element("CS", None),
        },
    )


def assigned(workitem_uid: str, dataset: dict) -> dict:
    """UPS Assigned (Event Type 5): the station and human performers now scheduled."""
    attributes = {key: dataset[key] for key in ("00404025", "00404034", "00404041") if key in dataset}
    return report(workitem_uid, ASSIGNED, attributes)


def scp_status_change(
    status: str, *, subscription_list: str = "WARM START", ups_list: str = "WARM START"
) -> dict:
    """SCP Status Change (Event Type 4): ``GOING DOWN`` or ``RESTARTED`` (CC.2.4.2)."""
    return report(
        GLOBAL_UPS_UIDS[0],
        SCP_STATUS_CHANGE,
        {
            "00741242": _element("CS", status),
            "00741244": _element("CS", subscription_list),
            "00741246": _element("CS", ups_list),
        },
    )


def send_now(ae_titles: Iterable[str], reports: Iterable[dict]) -> None:
    """Deliver ``reports`` (in order) to every channel of each AE, now."""
    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer configured: UPS event reports are not delivered")
        return
    reports = list(reports)
    group_send = async_to_sync(layer.group_send)
    for ae_title in dict.fromkeys(ae_titles):
        for dataset in reports:
            text = json.dumps(dataset, ensure_ascii=False, separators=(",", ":"))
            try:
                group_send(ae_group(ae_title), {"type": MESSAGE_TYPE, "text": text})
            except Exception:  # a layer outage must not fail the transaction that already committed
                logger.exception("could not deliver a UPS event report to %s", ae_title)


def send_on_commit(ae_titles: Iterable[str], reports: Iterable[dict]) -> None:
    """Deliver after the surrounding transaction commits (at once when there is none)."""
    ae_titles, reports = list(ae_titles), list(reports)
    if ae_titles and reports:
        transaction.on_commit(lambda: send_now(ae_titles, reports))
