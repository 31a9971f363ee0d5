"""Workitem search (PS3.18 §11.9, conformance statement "Search Workitems").

Query parameters → one ORM query over ``Workitem``'s indexed columns and
``WorkitemValue`` rows. Matching reuses the studies search's pieces from
``archive.query`` (DICOM wildcards → escaped LIKE, case-insensitive LIKE lookups) and
``archive.values.normalize_name`` (case- and accent-insensitive person names), so a
workitem search matches exactly as a study search does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from archive.query import has_wildcard, like_pattern  # also registers the dicom_ilike lookup
from archive.uids import validate_uid
from archive.values import normalize_name
from dicomweb.queryparams import QueryError, whole_number  # one paging rule and error for QIDO and UPS
from workitems.models import Workitem, WorkitemValue

LIMIT_DEFAULT = 100
LIMIT_MAX = 4000
CONTROL_PARAMETERS = {"limit", "offset", "includefield", "fuzzymatching", "accept", "charset"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


@dataclass(frozen=True, slots=True)
class Searchable:
    path: str  # keyword path, e.g. "ReferencedRequestSequence.AccessionNumber"
    kind: str  # "pn" | "text" | "uid" | "datetime" | "state" | "value"
    column: str = ""  # Workitem column; empty for WorkitemValue rows


SEARCHABLE: dict[str, Searchable] = {
    s.path: s
    for s in (
        Searchable("PatientName", "pn", "patient_name_norm"),
        Searchable("PatientID", "text", "patient_id"),
        Searchable("ReferencedRequestSequence.AccessionNumber", "value"),
        Searchable("ReferencedRequestSequence.RequestedProcedureID", "value"),
        Searchable("ScheduledProcedureStepStartDateTime", "datetime", "scheduled_start"),
        Searchable("ScheduledStationNameCodeSequence.CodeValue", "value"),
        Searchable("ScheduledStationClassCodeSequence.CodeValue", "value"),
        Searchable("ScheduledStationGeographicLocationCodeSequence.CodeValue", "value"),
        Searchable("ProcedureStepState", "state", "state"),
        Searchable("StudyInstanceUID", "uid", "study_uid"),
    )
}
VALUE_PATHS = [s.path for s in SEARCHABLE.values() if s.kind == "value"]


@dataclass(slots=True)
class WorkitemQuery:
    q: Q = field(default_factory=Q)
    match_tags: set[str] = field(default_factory=set)  # top-level keys of matched attributes
    includefield: set[str] = field(default_factory=set)
    include_all: bool = False
    limit: int = LIMIT_DEFAULT
    offset: int = 0
    matches: dict[str, str] = field(default_factory=dict)  # path → raw value (filtered global)


def keyword_path(name: str) -> str:
    """``0040A370.00080050`` or ``ReferencedRequestSequence.AccessionNumber`` → keyword path."""
    parts = []
    for part in name.split("."):
        if _TAG.match(part):
            keyword = keyword_for_tag(int(part, 16))
            if not keyword:
                raise QueryError(f"Unknown attribute tag {part!r}.")
            parts.append(keyword)
        elif tag_for_keyword(part) is not None:
            parts.append(part)
        else:
            raise QueryError(f"Unknown attribute {part!r}: use a DICOM keyword or a ggggeeee tag.")
    return ".".join(parts)


def _key(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


def normalize_datetime(text: str, *, high: bool = False) -> str:
    """A DT (or DA) value → fixed-width ``YYYYMMDDHHMMSS.ffffff``; ValueError if malformed.

    A partial value is the start of its period, or its end when it is a range's upper
    bound (``20240131`` as an upper bound means up to 23:59:59.999999 that day).
    """
    text = re.sub(r"[+-]\d{4}$", "", text.strip())  # a UTC offset is ignored
    main, _, fraction = text.partition(".")
    if not main.isdigit() or len(main) not in (4, 6, 8, 10, 12, 14) or (fraction and not fraction.isdigit()):
        raise ValueError(f"{text!r} is not a date-time (YYYYMMDDHHMMSS)")
    filler = "1231235959" if high else "0101000000"
    full = main + filler[len(main) - 4 :] if len(main) < 14 else main
    if len(main) == 6 and high:  # YYYYMM: the last day is not always 31; "32" sorts after every day
        full = main + "32235959"
    frac = (fraction + ("999999" if high and not fraction else "000000"))[:6]
    return f"{full}.{frac}"


def _datetime_q(column: str, text: str) -> Q:
    if "-" in text.lstrip("-") or text.startswith("-"):
        first, _, second = text.partition("-")
        if not first and not second:
            raise QueryError("ScheduledProcedureStepStartDateTime: '-' alone is not a range.")
        try:
            low = normalize_datetime(first) if first else None
            high = normalize_datetime(second, high=True) if second else None
        except ValueError as exc:
            raise QueryError(f"ScheduledProcedureStepStartDateTime: {exc}.") from exc
        if low and high and low > high:
            raise QueryError(
                f"ScheduledProcedureStepStartDateTime: the range {text!r} ends before it starts."
            )
        q = Q()
        if low:
            q &= Q(**{f"{column}__gte": low})
        if high:
            q &= Q(**{f"{column}__lte": high})
        return q
    try:
        low, high = normalize_datetime(text), normalize_datetime(text, high=True)
    except ValueError as exc:
        raise QueryError(f"ScheduledProcedureStepStartDateTime: {exc}.") from exc
    return Q(**{f"{column}__gte": low, f"{column}__lte": high})


def match_q(searchable: Searchable, text: str, fuzzy: bool) -> Q:
    """The filter for one query key (PS3.4 C.2.2.2 single value, wildcard, range, fuzzy)."""
    text = text.rstrip("\x00")
    if not text.strip():
        raise QueryError(f"{searchable.path}: an empty value cannot be searched for.")
    if searchable.kind == "datetime":
        return _datetime_q(searchable.column, text)
    if searchable.kind == "uid":
        values = [v.strip() for v in re.split(r"[,\\]", text)]
        for value in values:
            ok, reason = validate_uid(value)
            if not ok:
                raise QueryError(f"{searchable.path}: {value!r} is not a valid UID ({reason}).")
        return Q(**{f"{searchable.column}__in": values})
    if searchable.kind == "pn":
        normalized = normalize_name(text)
        if has_wildcard(text):
            return Q(**{f"{searchable.column}__dicom_like": like_pattern(normalized)})
        if fuzzy:
            # every word of the query starts some word of the name ("jo do" matches Doe^John)
            q = Q()
            for word in normalized.replace("^", " ").replace("=", " ").split():
                q &= Q(patient_name_words__contains=" " + word)
            return q
        return Q(**{searchable.column: normalized})
    if searchable.kind == "state" and not has_wildcard(text) and text.upper() not in dict(Workitem.STATES):
        raise QueryError(
            f"ProcedureStepState: {text!r} is not a state (SCHEDULED, IN PROGRESS, CANCELED, COMPLETED)."
        )
    if searchable.kind == "value":
        rows = WorkitemValue.objects.filter(workitem=OuterRef("pk"), attribute=searchable.path)
        if has_wildcard(text):
            rows = rows.filter(value__dicom_ilike=like_pattern(text))
        else:
            rows = rows.filter(value__iexact=text)
        return Q(Exists(rows))
    if has_wildcard(text):
        return Q(**{f"{searchable.column}__dicom_ilike": like_pattern(text)})
    return Q(**{f"{searchable.column}__iexact": text})


def parse(params, *, paging: bool = True) -> WorkitemQuery:
    """A QueryDict (or a plain dict of lists) → the query; QueryError names the bad parameter."""
    get = params.get
    getlist = params.getlist if hasattr(params, "getlist") else (lambda k: list(params.get(k, [])))
    fuzzy_text = get("fuzzymatching") or "false"
    fuzzy_text = fuzzy_text if isinstance(fuzzy_text, str) else fuzzy_text[0]
    if fuzzy_text.lower() not in ("true", "false"):
        raise QueryError(f"fuzzymatching must be true or false, not {fuzzy_text!r}.")
    fuzzy = fuzzy_text.lower() == "true"
    query = WorkitemQuery()
    if paging:
        if "limit" in params:
            query.limit = whole_number("limit", getlist("limit")[0], 1, LIMIT_MAX)
        if "offset" in params:
            query.offset = whole_number("offset", getlist("offset")[0], 0, None)
    for name in params:
        if name.lower() in CONTROL_PARAMETERS:
            continue
        path = keyword_path(name)
        searchable = SEARCHABLE.get(path)
        if searchable is None:
            raise QueryError(f"{path} is not searchable for workitems; searchable: {', '.join(SEARCHABLE)}.")
        values = getlist(name)
        if len(values) != 1 or path in query.matches:
            raise QueryError(f"{path} is given more than once.")
        query.q &= match_q(searchable, values[0], fuzzy)
        query.matches[path] = values[0]
        query.match_tags.add(_key(path.split(".")[0]))
    for value in getlist("includefield"):
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name.lower() == "all":
                query.include_all = True
                continue
            path = keyword_path(name)
            if "." in path:
                raise QueryError(f"includefield {name!r}: only top-level attributes can be included.")
            query.includefield.add(_key(path))
    if fuzzy:
        query.matches["fuzzymatching"] = "true"
    return query


def search(query: WorkitemQuery) -> QuerySet[Workitem]:
    """Matching workitems, newest first (primary key breaks ties so paging is stable)."""
    return Workitem.objects.filter(query.q).order_by("-updated_at", "-id")


def matches(workitem: Workitem, stored_query: dict[str, str]) -> bool:
    """Does ``workitem`` match a filtered global subscription's query (same rules as search)?"""
    params = {k: [v] for k, v in stored_query.items()}
    parsed = parse(params, paging=False)
    return Workitem.objects.filter(pk=workitem.pk).filter(parsed.q).exists()
