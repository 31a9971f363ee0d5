"""The change feed (MS DICOM server v2 style) over HTTP, both tiers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from archive.models import ChangeFeedEntry
from tests.conftest import make_user
from tests.dicomweb.test_stow import stow
from tests.dicomweb.test_wado import instance_path
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers

FIELDS = {
    "Sequence",
    "StudyInstanceUid",
    "SeriesInstanceUid",
    "SopInstanceUid",
    "Action",
    "Timestamp",
    "State",
}


def feed(client: httpx.Client, **params) -> list[dict]:
    response = client.get("/dicomweb/changefeed", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def summary(entries: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["SopInstanceUid"], e["Action"], e["State"]) for e in entries]


@pytest.fixture
def history(api):
    """Store A, B, C; replace B (PUT); delete C. Returns the three data sets."""
    study_uid, series_uid = new_uid(), new_uid()
    a, b, c = (
        make_dataset(study_uid=study_uid, series_uid=series_uid, InstanceNumber=n, pixel_seed=n)
        for n in (1, 2, 3)
    )
    assert stow(api, [to_part10(ds) for ds in (a, b, c)]).status_code == 200
    b.SeriesDescription = "replaced"
    assert stow(api, [to_part10(b)], method="PUT").status_code == 200
    assert api.delete(instance_path(c)).status_code == 204
    return a, b, c


def test_entries_record_creates_updates_and_deletes_in_order(api, history):
    a, b, c = history
    entries = feed(api)
    assert summary(entries) == [
        (a.SOPInstanceUID, "create", "current"),
        (b.SOPInstanceUID, "create", "replaced"),
        (c.SOPInstanceUID, "create", "deleted"),
        (b.SOPInstanceUID, "update", "current"),
        (c.SOPInstanceUID, "delete", "deleted"),
    ]
    sequences = [e["Sequence"] for e in entries]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    for entry in entries:
        assert set(entry) - {"Metadata"} == FIELDS
        assert entry["StudyInstanceUid"] == a.StudyInstanceUID
        assert entry["SeriesInstanceUid"] == a.SeriesInstanceUID
        assert entry["Timestamp"].endswith("Z")
        datetime.fromisoformat(entry["Timestamp"])
    timestamps = [datetime.fromisoformat(e["Timestamp"]) for e in entries]
    assert timestamps == sorted(timestamps)


def test_metadata_is_included_by_default_for_current_entries_only(api, live_url, history):
    a, b, _ = history
    entries = feed(api)
    with_metadata = [e for e in entries if "Metadata" in e]
    assert [(e["SopInstanceUid"], e["Action"]) for e in with_metadata] == [
        (a.SOPInstanceUID, "create"),
        (b.SOPInstanceUID, "update"),
    ]
    replaced = with_metadata[1]["Metadata"]
    assert replaced["00080018"]["Value"] == [b.SOPInstanceUID]
    assert replaced["0008103E"]["Value"] == ["replaced"]  # the current version's metadata
    # Bulk data as absolute URIs, exactly as the metadata resource hands them out.
    pixel_uri = replaced["7FE00010"]["BulkDataURI"]
    assert pixel_uri == f"{live_url}{instance_path(b)}/bulkdata/7FE00010"
    metadata = api.get(f"{instance_path(b)}/metadata").json()[0]
    assert replaced == metadata

    assert all("Metadata" not in e for e in feed(api, includemetadata="false"))
    explicit = feed(api, includeMetadata="True")
    assert [e["SopInstanceUid"] for e in explicit if "Metadata" in e] == [a.SOPInstanceUID, b.SOPInstanceUID]


def test_limit_and_offset_page_through_the_feed(api, history):
    everything = feed(api)
    assert [e["Sequence"] for e in feed(api, limit=2)] == [e["Sequence"] for e in everything[:2]]
    assert [e["Sequence"] for e in feed(api, offset=2, limit=2)] == [e["Sequence"] for e in everything[2:4]]
    assert [e["Sequence"] for e in feed(api, offset=4, limit=2)] == [everything[4]["Sequence"]]
    assert feed(api, offset=5) == []
    assert feed(api, offset=1_000_000) == []


def test_default_limit_is_100_and_max_200(api):
    rows = [
        ChangeFeedEntry(
            timestamp=datetime(2024, 1, 1, tzinfo=UTC),
            action="create",
            state="current",
            study_uid="1.2",
            series_uid="1.2.3",
            instance_uid=f"1.2.3.{n}",
            version=n,
        )
        for n in range(250)
    ]
    ChangeFeedEntry.objects.bulk_create(rows)
    assert len(feed(api, includemetadata="false")) == 100
    assert len(feed(api, limit=200)) == 200
    assert len(feed(api, limit=200, offset=200)) == 50


def test_start_time_is_inclusive_and_end_time_exclusive(api, history):
    sequences = [e["Sequence"] for e in feed(api)]
    for day, sequence in enumerate(sequences, start=1):
        ChangeFeedEntry.objects.filter(sequence=sequence).update(timestamp=datetime(2024, 1, day, tzinfo=UTC))

    def window(**params) -> list[int]:
        return [e["Sequence"] for e in feed(api, **params)]

    assert window(startTime="2024-01-02T00:00:00Z", endTime="2024-01-04T00:00:00Z") == sequences[1:3]
    assert window(startTime="2024-01-04T00:00:00Z") == sequences[3:]
    assert window(endTime="2024-01-02T00:00:00Z") == sequences[:1]
    # Offsets other than Z; names are case-insensitive.
    assert (
        window(starttime="2024-01-02T02:00:00+02:00", ENDTIME="2024-01-03T19:00:00-05:00") == sequences[1:3]
    )
    assert window(startTime="2024-01-02T00:00:00Z", offset=1, limit=1) == sequences[2:3]
    # An unencoded "+" arrives as a space; it is read as the offset it was meant to be.
    response = api.get("/dicomweb/changefeed?startTime=2024-01-05T02:00:00+02:00")
    assert [e["Sequence"] for e in response.json()] == sequences[4:]
    assert window(startTime="2030-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"startTime": "2024-01-01T00:00:00"}, "startTime"),  # no UTC offset
        ({"endTime": "2024-01-01"}, "endTime"),  # a date, not a date-time
        ({"startTime": "2024-01-02T00:00:00Z", "endTime": "2024-01-02T00:00:00Z"}, "endTime"),
        ({"startTime": "2024-01-03T00:00:00Z", "endTime": "2024-01-02T00:00:00Z"}, "endTime"),
        ({"includemetadata": "yes"}, "includeMetadata"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api, params, named):
    response = api.get("/dicomweb/changefeed", params=params)
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_latest_is_the_newest_entry(api, history):
    _, _, c = history
    response = api.get("/dicomweb/changefeed/latest")
    assert response.status_code == 200
    latest = response.json()
    assert latest["Sequence"] == feed(api)[-1]["Sequence"]
    assert (latest["SopInstanceUid"], latest["Action"], latest["State"]) == (
        c.SOPInstanceUID,
        "delete",
        "deleted",
    )
    assert "Metadata" not in latest

    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    latest = api.get("/dicomweb/changefeed/latest").json()
    assert (latest["SopInstanceUid"], latest["Action"], latest["State"]) == (
        ds.SOPInstanceUID,
        "create",
        "current",
    )
    assert latest["Metadata"]["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert "Metadata" not in api.get("/dicomweb/changefeed/latest?includemetadata=false").json()
    assert api.get("/dicomweb/changefeed/latest?includemetadata=no").status_code == 400


def test_latest_of_an_empty_feed_is_204(api):
    response = api.get("/dicomweb/changefeed/latest")
    assert response.status_code == 204
    assert response.content == b""
    assert feed(api) == []


def test_a_restored_instance_supersedes_its_deleted_history(api):
    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    assert api.delete(instance_path(ds)).status_code == 204
    assert stow(api, [to_part10(ds)]).status_code == 200
    assert summary(feed(api)) == [
        (ds.SOPInstanceUID, "create", "replaced"),
        (ds.SOPInstanceUID, "delete", "replaced"),
        (ds.SOPInstanceUID, "create", "current"),
    ]


def test_deleting_a_study_records_one_entry_per_instance(api, history):
    a, b, _ = history
    before = len(feed(api))
    assert api.delete(f"/dicomweb/studies/{a.StudyInstanceUID}").status_code == 204
    entries = feed(api)
    assert sorted(summary(entries[before:])) == sorted(
        [(a.SOPInstanceUID, "delete", "deleted"), (b.SOPInstanceUID, "delete", "deleted")]
    )
    assert all(e["State"] == "deleted" for e in entries)
    assert all("Metadata" not in e for e in entries)


def test_failed_stores_leave_no_entry(api):
    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    response = stow(api, [to_part10(ds)])  # POST of a stored instance: 45070, nothing changes
    assert response.status_code == 409
    assert summary(feed(api)) == [(ds.SOPInstanceUID, "create", "current")]


def test_the_feed_needs_the_read_role(live_url, anonymous):
    assert anonymous.get("/dicomweb/changefeed").status_code == 401
    assert anonymous.get("/dicomweb/changefeed/latest").status_code == 401
    _, key = make_user("writer", ("write",))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}) as writer:
        assert writer.get("/dicomweb/changefeed").status_code == 403
        assert writer.get("/dicomweb/changefeed/latest").status_code == 403


@pytest.mark.real_services
def test_a_reader_never_sees_a_later_entry_before_an_earlier_one_commits(api):
    """Entries become visible in sequence order even when stores overlap (PostgreSQL).

    A store that numbered its entry first but commits last must not let a later entry
    show up alone: a client paging with ``offset`` would step past the gap and never
    read the earlier entry. Store 1 takes its entry and holds its transaction open;
    store 2 starts meanwhile. Until store 1 commits, the feed shows neither. (SQLite has
    one writer at a time, so there the order holds by construction, and an open write
    transaction would also hold up this test's own audited GET.)
    """
    import threading

    from django.db import connection, transaction

    from archive import changefeed
    from archive.indexing import Identifiers

    first = Identifiers(new_uid(), new_uid(), new_uid(), "1.2.840.10008.5.1.4.1.1.7", "P1")
    second = Identifiers(new_uid(), new_uid(), new_uid(), "1.2.840.10008.5.1.4.1.1.7", "P2")
    numbered, release, second_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def store(ids: Identifiers, before_commit: threading.Event | None) -> None:
        try:
            with transaction.atomic():
                changefeed.record_store(ids, 1, replaced=False)
                if before_commit is not None:
                    numbered.set()
                    assert before_commit.wait(20)
            if before_commit is None:
                second_done.set()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    one = threading.Thread(target=store, args=(first, release))
    one.start()
    assert numbered.wait(20)
    two = threading.Thread(target=store, args=(second, None))
    two.start()
    try:
        second_done.wait(1.0)
        # Store 2 may only be visible together with store 1.
        assert second.instance_uid not in [e["SopInstanceUid"] for e in feed(api)]
    finally:
        release.set()
        one.join(30)
        two.join(30)
    assert not errors
    uids = [e["SopInstanceUid"] for e in feed(api)]
    assert uids.index(first.instance_uid) < uids.index(second.instance_uid)
