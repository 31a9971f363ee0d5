"""The change feed, as the MS DICOM server's v2 API serves it.

``GET /changefeed?startTime=&endTime=&offset=&limit=&includemetadata=`` — a JSON array
of entries in sequence order; ``GET /changefeed/latest?includemetadata=`` — the newest
entry as a JSON object, or 204 No Content while the feed is empty (what the MS server
answers: its controller returns a null entry, which ASP.NET Core sends as 204).

Parameters as the MS documentation's v2 table gives them (names case-insensitive, as
ASP.NET binds them): ``offset`` ≥ 0 (default 0) skips entries of the window; ``limit``
1 to 200 (default 100); ``startTime`` (inclusive) and ``endTime`` (exclusive) are ISO 8601
date-times that must carry a UTC offset (``Z`` or ``±hh:mm``), and ``endTime`` must be
after ``startTime``; ``includemetadata`` is ``true`` (default) or ``false``. A bad value
is a 400 naming the parameter.

``Metadata`` (DICOM JSON, with absolute BulkDataURIs as the metadata resource gives them)
is present only when asked for, and only on entries whose state is ``current``: other
entries record a version the archive no longer holds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from archive import changefeed
from archive.metadata import BULKDATA_PREFIX
from archive.models import ChangeFeedEntry, Instance
from dicomweb.renderers import PlainJsonRenderer
from dicomweb.views.base import DicomWebView, base_url

DEFAULT_LIMIT = 100
MAX_LIMIT = 200
MAX_OFFSET = 2**62  # far beyond any feed, and offset + limit stays a 64-bit integer

_OFFSET_TAIL = re.compile(r"^(.*\d) (\d{2}(?::?\d{2})?)$")


def _query(request) -> dict[str, str]:
    """Query parameters by lower-cased name (the first value of each)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.items():
        params.setdefault(name.lower(), value)
    return params


def _int(params: dict[str, str], name: str, label: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,19}", text):
        raise ParseError(f"Invalid {label} {raw[:40]!r}: expected a whole number.")
    value = int(text)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ParseError(f"Invalid {label} {value}: must be {bounds}.")
    return value


def _bool(params: dict[str, str], name: str, label: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text not in ("true", "false"):
        raise ParseError(f"Invalid {label} {raw[:40]!r}: expected true or false.")
    return text == "true"


def _time(params: dict[str, str], name: str, label: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    value = _parse_time(text)
    if value is None:
        # An unencoded "+" in "…T10:00:00+02:00" arrives as a space; read it as meant.
        match = _OFFSET_TAIL.match(text)
        value = _parse_time(f"{match.group(1)}+{match.group(2)}") if match else None
    if value is None:
        raise ParseError(
            f"Invalid {label} {raw[:60]!r}: expected an ISO 8601 date-time with a UTC offset, "
            "e.g. 2024-05-10T16:00:00Z or 2024-05-10T18:00:00%2B02:00."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ParseError(f"Invalid {label} {raw[:60]!r}: a UTC offset (Z or ±hh:mm) is required.")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ParseError(f"Invalid {label} {raw[:60]!r}: out of range.") from None


def _parse_time(text: str) -> datetime | None:
    if "T" not in text.upper() and " " not in text:
        return None  # a date alone is not a date-time
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _absolute_bulkdata(node: Any, prefix: str) -> Any:
    """The stored DICOM JSON with each relative ``bulkdata/…`` URI made absolute."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "BulkDataURI" and isinstance(value, str) and value.startswith(BULKDATA_PREFIX):
                out[key] = prefix + value
            else:
                out[key] = _absolute_bulkdata(value, prefix)
        return out
    if isinstance(node, list):
        return [_absolute_bulkdata(item, prefix) for item in node]
    return node


def _metadata_of(entries: list[ChangeFeedEntry], root: str) -> dict[tuple[str, int | None], dict]:
    """Current metadata of the entries that are ``current``, by (instance UID, version)."""
    wanted = {e.instance_uid for e in entries if e.state == ChangeFeedEntry.State.CURRENT}
    if not wanted:
        return {}
    rows = Instance.objects.filter(instance_uid__in=wanted).values_list(
        "instance_uid", "version", "study__study_uid", "series__series_uid", "metadata"
    )
    found = {}
    for instance_uid, version, study_uid, series_uid, metadata in rows:
        prefix = f"{root}/studies/{study_uid}/series/{series_uid}/instances/{instance_uid}/"
        found[(instance_uid, version)] = _absolute_bulkdata(metadata, prefix)
    return found


def _render(entries: list[ChangeFeedEntry], request, include_metadata: bool) -> list[dict[str, Any]]:
    metadata = _metadata_of(entries, base_url(request)) if include_metadata else {}
    out = []
    for entry in entries:
        item: dict[str, Any] = {
            "Sequence": entry.sequence,
            "StudyInstanceUid": entry.study_uid,
            "SeriesInstanceUid": entry.series_uid,
            "SopInstanceUid": entry.instance_uid,
            "Action": entry.action,
            "Timestamp": _timestamp(entry.timestamp),
            "State": entry.state,
        }
        found = metadata.get((entry.instance_uid, entry.version))
        if found is not None and entry.state == ChangeFeedEntry.State.CURRENT:
            # Only a current entry's version is still stored; the others have no
            # "Metadata" at all (the MS server omits it likewise).
            item["Metadata"] = found
        out.append(item)
    return out


class ChangeFeedView(DicomWebView):
    renderer_classes = [PlainJsonRenderer]
    query_parameters = ("startTime", "endTime", "offset", "limit", "includemetadata")

    def get(self, request):
        params = _query(request)
        offset = _int(params, "offset", "offset", 0, 0, MAX_OFFSET)
        limit = _int(params, "limit", "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        start = _time(params, "starttime", "startTime")
        end = _time(params, "endtime", "endTime")
        include_metadata = _bool(params, "includemetadata", "includeMetadata", True)
        if start is not None and end is not None and end <= start:
            raise ParseError(
                f"Invalid time range: endTime ({_timestamp(end)}) must be after startTime "
                f"({_timestamp(start)})."
            )
        entries = changefeed.entries(start, end, offset, limit)
        return Response(_render(entries, request, include_metadata))


class ChangeFeedLatestView(DicomWebView):
    renderer_classes = [PlainJsonRenderer]
    query_parameters = ("includemetadata",)

    def get(self, request):
        include_metadata = _bool(_query(request), "includemetadata", "includeMetadata", True)
        entry = changefeed.latest()
        if entry is None:
            return Response(status=204)
        return Response(_render([entry], request, include_metadata)[0])
