"""QIDO-RS query string → ``archive.query.QuerySpec`` (PS3.18 §8.3.4, conformance statement).

Parsed once, strictly: an unknown or unsearchable attribute, an empty or malformed value,
or an out-of-range limit/offset is a 400 whose message names the parameter. Values are
already percent-decoded (UTF-8) by Django; trailing NUL padding is ignored, as stored
values are indexed without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from archive.query import (
    SEARCHABLE_BY_TAG,
    Attribute,
    Level,
    Match,
    QuerySpec,
    has_wildcard,
    parse_date,
    parse_time,
    searchable_levels,
)
from archive.uids import validate_uid

CONTROL_PARAMETERS = {"limit", "offset", "includefield", "fuzzymatching", "accept", "charset"}
LIMIT_MAX = 200
LIMIT_DEFAULT = 100
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


class QueryError(ValueError):
    """A query parameter Archway cannot accept (answered with 400)."""


@dataclass(slots=True)
class SearchRequest:
    spec: QuerySpec
    includefield: set[int] = field(default_factory=set)
    include_all: bool = False
    fuzzy: bool = False
    warnings: list[str] = field(default_factory=list)


def attribute_tag(name: str) -> int:
    """A keyword or ``ggggeeee`` tag → tag number; QueryError when it names nothing."""
    if _TAG.match(name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"Unknown attribute {name!r}: use a DICOM keyword or a ggggeeee tag.")
    return tag


def _attribute(name: str, target: Level, levels: tuple[Level, ...]) -> Attribute:
    tag = attribute_tag(name)
    attribute = SEARCHABLE_BY_TAG.get(tag)
    label = keyword_for_tag(tag) or name
    if attribute is None or attribute.level not in levels:
        where = {"study": "studies", "series": "series", "instance": "instances"}[target]
        raise QueryError(f"Attribute {label} ({tag:08X}) is not searchable when searching for {where}.")
    return attribute


def whole_number(name: str, text: str, low: int, high: int | None) -> int:
    """A paging parameter (``limit``, ``offset``): digits only, within bounds (QIDO and UPS)."""
    if not re.fullmatch(r"\d+", text or ""):
        raise QueryError(f"{name} must be a whole number, not {text!r}.")
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueryError(f"{name} must be {bound}, not {value}.")
    return value


def _range(attribute: Attribute, text: str) -> Match:
    parse = parse_date if attribute.kind == "date" else parse_time
    first, _, second = text.partition("-")
    if attribute.kind == "date" and len(text) == 10 and text.count("-") == 2:
        return Match(attribute, "single", (text,))  # an ISO date, not a range
    if not first and not second:
        raise QueryError(f"{attribute.keyword}: a range needs at least one bound ('-' alone is not a range).")
    try:
        low = parse(first) if first else None
        high = parse(second) if second else None
    except ValueError as exc:
        raise QueryError(f"{attribute.keyword}: {exc}.") from exc
    # A time range may wrap when it combines with a date range (one date-time range).
    if attribute.kind == "date" and low is not None and high is not None and low > high:
        raise QueryError(f"{attribute.keyword}: the range {text!r} ends before it starts.")
    return Match(attribute, "range", (text,), low, high)


def _match(attribute: Attribute, text: str, fuzzy: bool) -> Match:
    text = text.rstrip("\x00")
    if text == "" or text.strip() == "":
        raise QueryError(f"{attribute.keyword}: an empty value cannot be searched for.")
    kind = attribute.kind
    if kind == "uid":
        values = tuple(v.strip() for v in re.split(r"[,\\]", text))
        for value in values:
            ok, reason = validate_uid(value)
            if not ok:
                raise QueryError(f"{attribute.keyword}: {value!r} is not a valid UID ({reason}).")
        return Match(attribute, "uid_list" if len(values) > 1 else "single", values)
    if kind in ("date", "time"):
        if "-" in text and not (kind == "date" and len(text) == 10 and text.count("-") == 2):
            return _range(attribute, text)
        try:
            (parse_date if kind == "date" else parse_time)(text)
        except ValueError as exc:
            raise QueryError(f"{attribute.keyword}: {exc}.") from exc
        return Match(attribute, "single", (text,))
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise QueryError(f"{attribute.keyword}: {text!r} is not a whole number.")
        return Match(attribute, "single", (str(int(text)),))
    if kind == "modalities" or attribute.vr == "CS":
        values = tuple(v.strip() for v in re.split(r"[,\\]", text) if v.strip())
        if len(values) > 1 and not any(has_wildcard(v) for v in values):
            if kind == "modalities":
                return Match(attribute, "single", values)
            return Match(attribute, "uid_list", tuple(v.upper() for v in values))
    if has_wildcard(text):
        return Match(attribute, "wildcard", (text,))
    if fuzzy and kind == "pn":
        return Match(attribute, "fuzzy", (text,))
    return Match(attribute, "single", (text,))


def parse_search(
    params, target: Level, *, study_uid: str | None = None, series_uid: str | None = None
) -> SearchRequest:
    """Parse a QueryDict (``request.query_params``) for a search of ``target``."""
    levels = searchable_levels(
        target, study_in_path=study_uid is not None, series_in_path=series_uid is not None
    )
    fuzzy_text = params.get("fuzzymatching", "false").lower()
    if fuzzy_text not in ("true", "false"):
        raise QueryError(f"fuzzymatching must be true or false, not {params.get('fuzzymatching')!r}.")
    fuzzy = fuzzy_text == "true"
    spec = QuerySpec(target=target, study_uid=study_uid, series_uid=series_uid)
    if "limit" in params:
        spec.limit = whole_number("limit", params.get("limit"), 1, LIMIT_MAX)
    else:
        spec.limit = LIMIT_DEFAULT
    spec.offset = whole_number("offset", params.get("offset"), 0, None) if "offset" in params else 0
    request = SearchRequest(spec=spec, fuzzy=fuzzy)
    seen: set[int] = set()
    for name in params:
        if name.lower() in CONTROL_PARAMETERS:
            continue
        attribute = _attribute(name, target, levels)
        values = params.getlist(name)
        if attribute.tag in seen or len(values) > 1:
            raise QueryError(f"{attribute.keyword} is given more than once.")
        seen.add(attribute.tag)
        spec.matches.append(_match(attribute, values[0], fuzzy))
    for value in params.getlist("includefield"):
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name.lower() == "all":
                request.include_all = True
                continue
            request.includefield.add(attribute_tag(name))
    return request
