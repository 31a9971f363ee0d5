"""Index queries: retrieve helpers and QIDO-RS search (PS3.4 C.2.2.2 matching).

A ``QuerySpec`` (built from a request by ``dicomweb.queryparams``) becomes ONE ORM
query over indexed columns; one function per matching type, named after PS3.4
(single value, list of UIDs, wildcard, range, fuzzy person name), as pynetdicom's qrscp
does. Nothing here knows HTTP.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Literal

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    Func,
    Lookup,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from archive.indexing import WORD_MAX, name_words
from archive.models import Instance, PersonNameWord, Series, Study, StudyNameKey
from archive.values import normalize_name

Level = Literal["study", "series", "instance"]


# --- retrieve helpers ------------------------------------------------------------------------


def instances(
    study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
) -> QuerySet[Instance]:
    """Instances of a study / series / one instance, in series then instance-number order.

    The UIDs in the path must agree with each other: an instance UID under the wrong
    study or series matches nothing (404), as the resource does not exist there.
    """
    queryset = Instance.objects.filter(study__study_uid=study_uid)
    if series_uid is not None:
        queryset = queryset.filter(series__series_uid=series_uid)
    if instance_uid is not None:
        queryset = queryset.filter(instance_uid=instance_uid)
    return queryset.order_by("series_id", "instance_number", "id")


def version_tag(queryset: QuerySet[Instance]) -> tuple[int, int]:
    """(count, newest version) of the instances a resource covers: an ETag basis.

    Every change under a resource either changes the count (store, delete) or brings
    a version newer than all others (store, PUT replace), so the pair changes too.
    """
    result = queryset.order_by().aggregate(n=Count("id"), newest=Max("version"))
    return result["n"] or 0, result["newest"] or 0


# --- LIKE with DICOM wildcards -------------------------------------------------------------------


@CharField.register_lookup
class DicomLike(Lookup):
    """``column LIKE pattern ESCAPE '\\'``; the pattern is already translated and escaped."""

    lookup_name = "dicom_like"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


@CharField.register_lookup
class DicomILike(DicomLike):
    """Case-insensitive (``UPPER(column) LIKE UPPER(pattern)``), accent-sensitive."""

    lookup_name = "dicom_ilike"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"UPPER({lhs}) LIKE UPPER({rhs}) ESCAPE '\\'", [*lhs_params, *rhs_params]


def like_pattern(value: str) -> str:
    """DICOM wildcards (``*`` any run, ``?`` one character) → an escaped SQL LIKE pattern."""
    out = []
    for ch in value:
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


# --- the attribute registry ------------------------------------------------------------------------

Kind = Literal["text", "pn", "uid", "date", "time", "int", "modalities"]


@dataclass(frozen=True, slots=True)
class Attribute:
    keyword: str
    tag: int
    vr: str
    level: Level
    column: str  # field on the level's own model
    kind: Kind

    def path(self, target: Level) -> str:
        """The ORM path from the queried model (``target``) to this attribute's column."""
        if self.level == target:
            return self.column
        if self.level == "study":
            return f"study__{self.column}"
        return f"series__{self.column}"  # a series attribute seen from an instance query


def _a(keyword: str, tag: int, vr: str, level: Level, column: str, kind: Kind) -> Attribute:
    return Attribute(keyword, tag, vr, level, column, kind)


SEARCHABLE: dict[str, Attribute] = {
    a.keyword: a
    for a in (
        # Study level (conformance statement "Searchable attributes")
        _a("StudyInstanceUID", 0x0020000D, "UI", "study", "study_uid", "uid"),
        _a("PatientName", 0x00100010, "PN", "study", "patient_name_norm", "pn"),
        _a("PatientID", 0x00100020, "LO", "study", "patient__patient_id", "text"),
        _a("PatientBirthDate", 0x00100030, "DA", "study", "patient_birth_date", "date"),
        _a("AccessionNumber", 0x00080050, "SH", "study", "accession_number", "text"),
        _a("ReferringPhysicianName", 0x00080090, "PN", "study", "referring_physician_name_norm", "pn"),
        _a("StudyDate", 0x00080020, "DA", "study", "study_date", "date"),
        _a("StudyTime", 0x00080030, "TM", "study", "study_time", "time"),
        _a("StudyDescription", 0x00081030, "LO", "study", "study_description", "text"),
        _a("ModalitiesInStudy", 0x00080061, "CS", "study", "modalities_in_study", "modalities"),
        _a("StudyID", 0x00200010, "SH", "study", "study_id", "text"),
        # Series level
        _a("SeriesInstanceUID", 0x0020000E, "UI", "series", "series_uid", "uid"),
        _a("Modality", 0x00080060, "CS", "series", "modality", "text"),
        _a(
            "PerformedProcedureStepStartDate",
            0x00400244,
            "DA",
            "series",
            "performed_procedure_step_start_date",
            "date",
        ),
        _a("ManufacturerModelName", 0x00081090, "LO", "series", "manufacturer_model_name", "text"),
        _a("SeriesNumber", 0x00200011, "IS", "series", "series_number", "int"),
        # Instance level
        _a("SOPInstanceUID", 0x00080018, "UI", "instance", "instance_uid", "uid"),
        _a("SOPClassUID", 0x00080016, "UI", "instance", "sop_class_uid", "uid"),
        _a("InstanceNumber", 0x00200013, "IS", "instance", "instance_number", "int"),
        _a("Rows", 0x00280010, "US", "instance", "rows", "int"),
        _a("Columns", 0x00280011, "US", "instance", "columns", "int"),
        _a("NumberOfFrames", 0x00280008, "IS", "instance", "number_of_frames", "int"),
    )
}
SEARCHABLE_BY_TAG = {a.tag: a for a in SEARCHABLE.values()}


def searchable_levels(target: Level, *, study_in_path: bool, series_in_path: bool) -> tuple[Level, ...]:
    """Attribute levels a search may filter on.

    All studies / all series / all instances accept study attributes; series and
    instances accept series attributes unless the series is fixed by the path;
    instance attributes only for instance searches.
    """
    levels: list[Level] = []
    if not study_in_path:
        levels.append("study")
    if target in ("series", "instance") and not series_in_path:
        levels.append("series")
    if target == "instance":
        levels.append("instance")
    if target == "study":
        levels = ["study"]
    return tuple(levels)


# --- the query spec ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """One query key: an attribute and how to match it (PS3.4 C.2.2.2)."""

    attribute: Attribute
    kind: Literal["single", "wildcard", "uid_list", "range", "fuzzy"]
    values: tuple[str, ...] = ()
    low: dt.date | dt.time | None = None  # range bounds (None = open)
    high: dt.date | dt.time | None = None


@dataclass(slots=True)
class QuerySpec:
    target: Level
    study_uid: str | None = None
    series_uid: str | None = None
    matches: list[Match] = field(default_factory=list)
    limit: int = 100
    offset: int = 0


_MODELS = {"study": Study, "series": Series, "instance": Instance}


def _match_q(match: Match, target: Level) -> Q:
    attribute = match.attribute
    path = attribute.path(target)
    if attribute.kind == "modalities":
        return _modalities_q(match, target)
    if match.kind == "uid_list":
        return Q(**{f"{path}__in": list(match.values)})
    if match.kind == "range":
        return _range_q(path, match.low, match.high)
    if match.kind == "fuzzy":
        return _fuzzy_pn_q(attribute, target, match.values[0])
    value = match.values[0]
    if attribute.kind == "pn":
        normalized = normalize_name(value)
        if match.kind == "wildcard":
            return Q(**{f"{path}__dicom_like": like_pattern(normalized)})
        return Q(**{path: normalized})
    if attribute.kind in ("date", "time", "int"):
        return Q(**{path: _typed(attribute, value)})
    if match.kind == "wildcard":
        return Q(**{f"{path}__dicom_ilike": like_pattern(value)})
    if attribute.kind == "uid":
        return Q(**{path: value})
    return Q(**{f"{path}__iexact": value})


def _typed(attribute: Attribute, value: str):
    if attribute.kind == "date":
        return parse_date(value)
    if attribute.kind == "time":
        return parse_time(value)
    return int(value)


def _range_q(path: str, low, high) -> Q:
    q = Q()
    if low is not None:
        q &= Q(**{f"{path}__gte": low})
    if high is not None:
        q &= Q(**{f"{path}__lte": high})
    return q


# The words of a normalized name as a text-search vector, in SQL: the same split as
# ``archive.indexing.name_words`` (on ``^``, ``=`` and white space, empty words dropped).
# Migration 0007 built GIN indexes on exactly this expression; 0009 replaced them (and
# its reverse rebuilds them from this), so only the migrations use it.
NAME_WORDS_SQL = (
    r"array_to_tsvector(array_remove(regexp_split_to_array(translate({column}, '^=', '  '), '\s+'), ''))"
)

# Every prefix (1 to 64 characters) of every word of a normalized name, as a text-search
# vector: stored generated columns of archive_study, GIN-indexed (migration 0009,
# PostgreSQL; not model fields). A query word is a prefix of a name word exactly when it
# is one of these lexemes, so each query word is one exact lexeme.
NAME_PREFIX_COLUMNS = {
    "patient_name_norm": "patient_name_prefixes",
    "referring_physician_name_norm": "referring_physician_name_prefixes",
}


def _fuzzy_words(value: str) -> list[str]:
    return [word[:WORD_MAX] for word in name_words(normalize_name(value))]


def _prefixes_tsquery(words: list[str]) -> str:
    """``'JO' & 'DO'``: exact lexemes, quoted so that they are literal (' and \\ escaped).

    When every word has exactly two letters (``ma an``), the pair lexemes of migration
    0012 instead (``'AN MA'``, the two in code-point order): a name holds the pair
    exactly when it has a word starting with each, so the index entry of the pair is the
    set of matches, where intersecting ``MA`` and ``AN`` read every study with either
    (200k studies: 1,724 matches, 49,381 entries read, 1.9 ms in the index).
    """
    if len(words) > 1 and all(len(word) == 2 for word in words):
        lexemes = [" ".join(sorted(pair)) for pair in itertools.combinations(words, 2)]
    else:
        lexemes = words
    return " & ".join("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'" for lexeme in lexemes)


def _fuzzy_pn_q(attribute: Attribute, target: Level, value: str) -> Q:
    """Every word of the query is a prefix of some name component (conformance statement).

    PostgreSQL: the ids of the matching studies from one GIN index lookup
    (``patient_name_prefixes @@ 'JO' & 'DO'``, which intersects the two exact lexemes'
    posting lists in the index), computed first as an array (an InitPlan). As a plain
    condition under ``ORDER BY updated_at DESC LIMIT n`` the planner may instead walk
    studies newest first checking row by row, which is unbounded when few studies match.
    QIDO study searches use ``StudyNameKey`` or ``_fuzzy_study_q`` instead (see
    ``search``). Elsewhere: one indexed prefix scan of ``PersonNameWord`` per query word
    (maintained by ``archive.indexing``), intersected. Either way never ``LIKE '%…'``
    over every name.
    """
    words = _fuzzy_words(value)
    if not words:
        return Q()
    study_path = "pk" if target == "study" else "study_id"
    if connection.vendor == "postgresql":
        matching = Study.objects.filter(_fuzzy_study_q(attribute, words)).values("pk")
        return Q(_InArray(F(study_path), Subquery(matching)))
    field = PersonNameWord.REFERRING if attribute.column.startswith("referring") else PersonNameWord.PATIENT
    subqueries = [
        PersonNameWord.objects.filter(field=field, word__startswith=word).values("study_id") for word in words
    ]
    # One INTERSECT of the per-word id sets: the (small) set of matching studies first.
    matching = subqueries[0] if len(subqueries) == 1 else subqueries[0].intersection(*subqueries[1:])
    return Q(**{f"{study_path}__in": matching})


def _fuzzy_study_q(attribute: Attribute, words: list[str]) -> Q:
    """The condition on a study row itself (PostgreSQL): its name has all these prefixes."""
    return Q(_NamePrefixesMatch(F(attribute.column), _prefixes_tsquery(words)))


class _NamePrefixesMatch(Lookup):
    """``<name>_prefixes @@ tsquery`` for a normalized name column (PostgreSQL, migration 0009)."""

    lookup_name = "name_prefixes_match"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        column = NAME_PREFIX_COLUMNS[self.lhs.target.column]
        lhs = f"{compiler.quote_name_unless_alias(self.lhs.alias)}.{connection.ops.quote_name(column)}"
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} @@ ({rhs})::tsquery", rhs_params


class _MatchesFirst(Func):
    """``updated_at + interval '0'``: the same order as ``updated_at``, but no index has it.

    A QIDO study search with a fuzzy name condition of several words on PostgreSQL that
    ``StudyNameKey`` cannot answer (``joh do``) sorts by this (then by id): the planner
    cannot walk ``archive_study_recent`` newest first filtering row by row (which is
    unbounded when few studies match), so it takes the matches from the GIN index,
    reading each matching row once for its ``(updated_at, id)``, and keeps the newest
    with a top-N sort. At 200k studies, "jo do" (368 matches), the whole page query
    (before 0013 answered it): 626 buffers, 1.8 ms; the ids-array form (which re-read
    every match by primary key) with 0007's word index: 1,939 buffers, 5.7 ms.
    """

    template = "(%(expressions)s + interval '0')"
    output_field = DateTimeField()


class _InArray(Lookup):
    """``column = ANY(ARRAY((SELECT …)))``: any value of a subquery, evaluated once."""

    lookup_name = "in_array"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(ARRAY{rhs})", [*lhs_params, *rhs_params]


def _modalities_q(match: Match, target: Level) -> Q:
    """ModalitiesInStudy: the study has a series of any of the given modalities."""
    study_ref = "pk" if target == "study" else "study_id"
    series = Series.objects.filter(study_id=OuterRef(study_ref))
    if match.kind == "wildcard":
        series = series.filter(modality__dicom_ilike=like_pattern(match.values[0]))
    else:
        series = series.filter(modality__in=[v.upper() for v in match.values])
    return Q(Exists(series))


def combined_datetime_q(date_match: Match, time_match: Match, target: Level) -> Q:
    """StudyDate + StudyTime ranges as one date-time range (PS3.4 C.2.2.2.5.1)."""
    date_path = date_match.attribute.path(target)
    time_path = time_match.attribute.path(target)
    q = Q()
    if date_match.low is not None:
        low_time = time_match.low or dt.time.min
        q &= Q(**{f"{date_path}__gt": date_match.low}) | Q(
            **{date_path: date_match.low, f"{time_path}__gte": low_time}
        )
    if date_match.high is not None:
        high_time = time_match.high or dt.time.max
        q &= Q(**{f"{date_path}__lt": date_match.high}) | Q(
            **{date_path: date_match.high, f"{time_path}__lte": high_time}
        )
    return q


RESULT_ORDER = ("-updated_at", "-id")  # every level: newest first, the primary key breaking ties


def search(spec: QuerySpec) -> QuerySet:
    """The ordered, unpaged queryset of ``spec.target`` rows matching ``spec``.

    Newest first with the primary key as tie-breaker (``RESULT_ORDER``), so paging
    neither skips nor repeats a match while nothing changes. A study search may be
    ordered by an equal order that only makes sense with its own joins (a
    ``StudyNameKey`` second first); a query choosing rows it already has by primary key
    orders them by ``RESULT_ORDER``.
    """
    model = _MODELS[spec.target]
    queryset = model.objects.all()
    if spec.study_uid is not None:
        study_path = "study_uid" if spec.target == "study" else "study__study_uid"
        queryset = queryset.filter(**{study_path: spec.study_uid})
    if spec.series_uid is not None:
        queryset = queryset.filter(series__series_uid=spec.series_uid)
    matches = list(spec.matches)
    by_keyword = {m.attribute.keyword: m for m in matches}
    date, time = by_keyword.get("StudyDate"), by_keyword.get("StudyTime")
    if date is not None and time is not None and date.kind == "range" and time.kind == "range":
        queryset = queryset.filter(combined_datetime_q(date, time, spec.target))
        matches = [m for m in matches if m not in (date, time)]
    keyed = matches_first = False
    for match in matches:
        words = _fuzzy_words(match.values[0]) if match.kind == "fuzzy" else []
        if not (words and spec.target == "study" and connection.vendor == "postgresql"):
            queryset = queryset.filter(_match_q(match, spec.target))
            continue
        # On the study rows themselves, read once.
        key = None if keyed else name_key(words)
        if key is not None:
            queryset = queryset.filter(
                name_keys__field=_NAME_KEY_FIELD[match.attribute.column], name_keys__key=key
            )
            keyed = True
            if len(words) <= 2:
                continue  # the key is the whole condition
        queryset = queryset.filter(_fuzzy_study_q(match.attribute, words))
        # One lexeme (``j``, ``mar``): the planner knows how many studies have it and
        # walks the newest studies when most do; several: the intersection is its guess,
        # so the fenced order below (see _MatchesFirst).
        matches_first = matches_first or len(words) > 1
    if keyed:
        return queryset.order_by("-name_keys__second", *RESULT_ORDER)
    if matches_first:
        return queryset.order_by(_MatchesFirst("updated_at").desc(), "-id")
    return queryset.order_by(*RESULT_ORDER)


_NAME_KEY_FIELD = {
    "patient_name_norm": StudyNameKey.PATIENT,
    "referring_physician_name_norm": StudyNameKey.REFERRING,
}


def name_key(words: list[str]) -> str | None:
    """The ``StudyNameKey`` key holding a fuzzy query's matches, when its words allow one.

    Every word of exactly two letters: the first two words' pair (one word: with itself),
    in code-point order as ``archway_name_keys`` (migration 0013) writes it. A third word
    and beyond are checked on the study row. Otherwise None.
    """
    if not words or any(len(word) != 2 for word in words):
        return None
    first, second = sorted((words[0], words[1] if len(words) > 1 else words[0]))
    return f"{first} {second}"


# --- value parsing shared with dicomweb.queryparams --------------------------------------------------


def parse_date(text: str) -> dt.date:
    """DA ``YYYYMMDD`` (``YYYY-MM-DD`` tolerated); ValueError otherwise."""
    digits = text.replace("-", "") if len(text) == 10 else text
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError(f"{text!r} is not a date (YYYYMMDD)")
    return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))


def parse_time(text: str) -> dt.time:
    """TM ``HH[MM[SS[.F{1,6}]]]`` (colons tolerated); ValueError otherwise."""
    main, _, fraction = text.replace(":", "").partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        raise ValueError(f"{text!r} is not a time (HHMMSS.FFFFFF)")
    return dt.time(int(main[:2]), int(main[2:4] or 0), int(main[4:6] or 0), int((fraction + "000000")[:6]))


def match_q(keyword: str, kind: str, value: str, target: Level = "study") -> Q:
    """One QIDO-style condition outside a QIDO request (the admin's search box reuses it).

    ``kind`` is a ``Match`` kind: ``single``, ``wildcard`` or ``fuzzy``; the condition is
    exactly the one QIDO builds, so the admin hits the same indexes as search.
    """
    return _match_q(Match(SEARCHABLE[keyword], kind, (value,)), target)  # type: ignore[arg-type]
