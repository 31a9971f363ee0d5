"""Workitem data sets and clients for the UPS-RS tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.factories import new_uid

DICOM_JSON = "application/dicom+json"
GLOBAL = "1.2.840.10008.5.1.4.34.5"
FILTERED = "1.2.840.10008.5.1.4.34.5.1"


def el(vr: str, *values) -> dict:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def code(value: str, scheme: str = "99ARCHWAY", meaning: str = "x") -> dict:
    return {"00080100": el("SH", value), "00080102": el("SH", scheme), "00080104": el("LO", meaning)}


def workitem(
    uid: str | None = None,
    *,
    patient_name: str = "Doe^John",
    patient_id: str = "PAT-1",
    accession: str = "ACC-1",
    station: str = "CT01",
    start: str = "20240301090000",
    label: str = "CT chest",
    **extra: dict,
) -> dict:
    """A data set that meets every N-CREATE requirement (PS3.4 Table CC.2.5-3)."""
    dataset = {
        "00080016": el("UI", "1.2.840.10008.5.1.4.34.6.1"),
        "00100010": el("PN", {"Alphabetic": patient_name}),
        "00100020": el("LO", patient_id),
        "00100030": el("DA"),
        "00100040": el("CS", "O"),
        "00380010": el("LO"),
        "00380014": el("SQ"),
        "0040A370": el(
            "SQ",
            {
                "0020000D": el("UI", "1.2.3.4"),
                "00080050": el("SH", accession),
                "00401001": el("SH", "RP-" + accession),
                "00321060": el("LO", "Chest"),
                "00321064": el("SQ"),
            },
        ),
        "00741200": el("CS", "MEDIUM"),
        "00741204": el("LO", label),
        "00404025": el("SQ", code(station)),
        "00404026": el("SQ", code("CT")),
        "00404027": el("SQ", code("EAST")),
        "00404005": el("DT", start),
        "00404018": el("SQ"),
        "00404041": el("CS", "READY"),
        "00404021": el("SQ"),
        "00741000": el("CS", "SCHEDULED"),
        "0020000D": el("UI", "1.2.3.4"),
    }
    if uid:
        dataset["00080018"] = el("UI", uid)
    dataset.update(extra)
    return dataset


def performed() -> dict:
    """The final-state attributes a performer adds before COMPLETED."""
    return {
        "00741216": el(
            "SQ",
            {
                "00404028": el("SQ"),
                "00404050": el("DT", "20240301091000"),
                "00404019": el("SQ"),
                "00404051": el("DT", "20240301093000"),
                "00404033": el("SQ"),
            },
        )
    }


def state_body(state: str, transaction_uid: str | None) -> dict:
    body = {"00741000": el("CS", state)}
    if transaction_uid:
        body["00081195"] = el("UI", transaction_uid)
    return body


def post_json(client: httpx.Client, url: str, body, **kwargs) -> httpx.Response:
    return client.post(url, content=json.dumps(body), headers={"Content-Type": DICOM_JSON}, **kwargs)


def put_json(client: httpx.Client, url: str, body, **kwargs) -> httpx.Response:
    return client.put(url, content=json.dumps(body), headers={"Content-Type": DICOM_JSON}, **kwargs)


def create(client: httpx.Client, **kwargs) -> str:
    uid = new_uid()
    response = post_json(client, "/dicomweb/workitems", workitem(uid, **kwargs))
    assert response.status_code == 201, response.text
    return uid


def claim(client: httpx.Client, uid: str) -> str:
    transaction_uid = new_uid()
    response = put_json(
        client, f"/dicomweb/workitems/{uid}/state", state_body("IN PROGRESS", transaction_uid)
    )
    assert response.status_code == 200, response.text
    return transaction_uid


@contextmanager
def event_channel(base_url: str, ae_title: str, token: str) -> Iterator:
    """A real WebSocket client (the ``websockets`` library) on ``/dicomweb/subscribers/{ae}``."""
    from websockets.sync.client import connect

    url = base_url.replace("http://", "ws://") + f"/dicomweb/subscribers/{ae_title}"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        yield ws


def next_report(ws, timeout: float = 10) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def summary(report: dict) -> tuple:
    """(event type, workitem UID, state if any) of one event report."""
    state = (report.get("00741000") or {}).get("Value", [None])[0]
    return report["00001002"]["Value"][0], report["00001000"]["Value"][0], state


def no_more(ws, timeout: float = 0.5) -> bool:
    """True if nothing else arrives (used after a report that must be the last)."""
    try:
        ws.recv(timeout=timeout)
    except TimeoutError:
        return True
    return False
