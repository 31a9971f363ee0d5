"""PS3.4 C.2.2.2 matching types, table-driven, on the index without HTTP."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import orjson
import pytest
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from archive import studyresult
from archive.models import Patient, Series, Study
from archive.query import like_pattern, search
from archive.values import normalize_name
from dicomweb.queryparams import QueryError, parse_search

pytestmark = [pytest.mark.django_db, pytest.mark.both_tiers]


def make_study(
    name: str, patient_id: str, date: str, modalities: tuple[str, ...] = ("CT",), **fields
) -> Study:
    patient, _ = Patient.objects.get_or_create(patient_id=patient_id)
    study = Study.objects.create(
        study_uid=f"1.2.{abs(hash((name, patient_id, date))) % 10**12}",
        patient=patient,
        patient_name=name,
        patient_name_norm=normalize_name(name),
        study_date=dt.date.fromisoformat(date),
        **fields,
    )
    for index, modality in enumerate(modalities):
        Series.objects.create(series_uid=f"{study.study_uid}.{index}", study=study, modality=modality)
    return study


@pytest.fixture
def studies():
    return {
        "doe": make_study(
            "Doe^John",
            "P1",
            "2024-01-05",
            accession_number="A100",
            study_description="CT chest",
            study_time=dt.time(10, 15),
        ),
        "muller": make_study(
            "Müller^Jürgen",
            "P2",
            "2024-02-10",
            ("MR", "SR"),
            accession_number="A200",
            study_description="MR knee",
            study_time=dt.time(8, 30),
        ),
        "smith": make_study(
            "Smith^Anna",
            "p3",
            "2023-12-31",
            accession_number="B_300",
            study_description="100% CT",
            study_time=dt.time(23, 59, 59),
        ),
        "dash": make_study("O'Neil-Smith^Mary Ann", "P4", "2022-06-01"),
    }


def run(query: str, target="study"):
    request = parse_search(QueryDict(query), target)
    return {study.patient_name for study in search(request.spec)}


@pytest.mark.parametrize(
    "query,expected",
    [
        # single value: case-insensitive, exact
        ("PatientID=P1", {"Doe^John"}),
        ("PatientID=P3", {"Smith^Anna"}),
        ("AccessionNumber=a100", {"Doe^John"}),
        # wildcard: * and ? map to LIKE; SQL metacharacters in values are literal
        ("AccessionNumber=B_*", {"Smith^Anna"}),
        ("AccessionNumber=A?00", {"Doe^John", "Müller^Jürgen"}),
        ("StudyDescription=100%*", {"Smith^Anna"}),
        ("StudyDescription=100*", {"Smith^Anna"}),
        ("StudyDescription=*%*", {"Smith^Anna"}),
        # PN: case- and accent-insensitive
        ("PatientName=muller^jurgen", {"Müller^Jürgen"}),
        ("PatientName=M*", {"Müller^Jürgen"}),
        ("PatientName=*smith*", {"Smith^Anna", "O'Neil-Smith^Mary Ann"}),
        # fuzzy: any name component starts with each word
        ("PatientName=mar&fuzzymatching=true", {"O'Neil-Smith^Mary Ann"}),
        ("PatientName=ann mar&fuzzymatching=true", {"O'Neil-Smith^Mary Ann"}),
        ("PatientName=ith&fuzzymatching=true", set()),
        ("PatientName=o'ne&fuzzymatching=true", {"O'Neil-Smith^Mary Ann"}),
        ("PatientName=o'neil-smith m&fuzzymatching=true", {"O'Neil-Smith^Mary Ann"}),
        # characters that mean something to PostgreSQL's text search are plain characters
        ("PatientName=ann%7Cjo&fuzzymatching=true", set()),
        ("PatientName=ann%26mar&fuzzymatching=true", set()),
        ("PatientName=ann:*&fuzzymatching=true", set()),
        ("PatientName=!ann&fuzzymatching=true", set()),
        # ranges
        ("StudyDate=20240101-20241231", {"Doe^John", "Müller^Jürgen"}),
        ("StudyDate=-20231231", {"Smith^Anna", "O'Neil-Smith^Mary Ann"}),
        ("StudyDate=20231231-", {"Doe^John", "Müller^Jürgen", "Smith^Anna"}),
        ("StudyDate=2024-01-05", {"Doe^John"}),
        # combined date and time range
        ("StudyDate=20231231-20240210&StudyTime=235959-083000", {"Doe^John", "Müller^Jürgen", "Smith^Anna"}),
        ("StudyDate=20231231-20240210&StudyTime=235959.5-082959", {"Doe^John"}),
        # modalities in study: any series of those modalities
        ("ModalitiesInStudy=SR", {"Müller^Jürgen"}),
        ("ModalitiesInStudy=SR,CT", {"Doe^John", "Müller^Jürgen", "Smith^Anna", "O'Neil-Smith^Mary Ann"}),
        ("ModalitiesInStudy=S*", {"Müller^Jürgen"}),
    ],
)
def test_matching(studies, query, expected):
    assert run(query) == expected


def test_uid_list(studies):
    query = f"StudyInstanceUID={studies['doe'].study_uid},{studies['smith'].study_uid}"
    assert run(query) == {"Doe^John", "Smith^Anna"}


def test_series_search_by_modality_and_study_attribute(studies):
    request = parse_search(QueryDict("Modality=SR&PatientID=P2"), "series")
    assert [s.series_uid for s in search(request.spec)] == [f"{studies['muller'].study_uid}.1"]


@pytest.mark.parametrize(
    "query,message",
    [
        ("Unknown=1", "Unknown attribute"),
        ("PatientSex=M", "not searchable"),
        ("Modality=CT", "not searchable"),  # a series attribute on a study search
        ("StudyDate=-", "range"),
        ("StudyDate=20241301", "StudyDate"),
        ("StudyDate=20240301-20240201", "ends before"),
        ("StudyTime=25", "hour"),
        ("PatientID=", "empty"),
        ("PatientID=1&PatientID=2", "more than once"),
        ("limit=x", "limit"),
    ],
)
def test_parse_errors(query, message):
    with pytest.raises((QueryError, ValueError)) as caught:
        parse_search(QueryDict(query), "study")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "value,pattern",
    [
        ("ab*", "ab%"),
        ("a?c", "a_c"),
        ("100%", "100\\%"),
        ("a_b", "a\\_b"),
        ("x\\y", "x\\\\y"),
    ],
)
def test_like_pattern(value, pattern):
    assert like_pattern(value) == pattern


def test_ordering_is_newest_first_and_total(studies):
    request = parse_search(QueryDict(""), "study")
    names = [s.patient_name for s in search(request.spec)]
    assert names == ["O'Neil-Smith^Mary Ann", "Smith^Anna", "Müller^Jürgen", "Doe^John"]


# --- fuzzy person names (PostgreSQL: prefix lexemes of migration 0009; elsewhere PersonNameWord) ---

FUZZY_NAMES = (
    "Doe^John",
    "Doe^Joanna",
    "Müller^Jürgen",
    "O'Neil-Smith^Mary Ann",
    "Ann & Jo|Bar^!Neg:*",  # what tsquery syntax would read as operators (a query with * is a wildcard match)
    "Back\\Slash^(Paren) x:y",
    "Yamada^Tarou=山田^太郎=やまだ^たろう",  # component groups
    "Çelik^Ömer  Ann",  # accents, a double space
    "",  # no name
    "^^",
    "A" * 70 + "^B",  # a word longer than the 64 characters a word is cut to
)
FUZZY_QUERIES = (
    "jo do",
    "do",
    "j",
    "ann",
    "ann mar",
    "o'ne",
    "o'neil-smith m",
    "jo|b",
    "&",
    "!neg:",
    ":",
    "back\\s",
    "\\",
    "(paren)",
    "x:y",
    "山田 た",
    "やま",
    "tarou 太",
    "celik",
    "ç ö",
    "a" * 64,
    "a" * 65,
    "b " + "a" * 10,
    "ann ann",
    "zz",
    "ith",
    # every word two letters: the pair lexemes of migration 0012 on PostgreSQL
    "ma an",
    "an ma",
    "do jo",
    "jo jo",
    "o' ma an",
    "ya 山田",
    "mu ju",
    "ce om",
    "an jo",
    "jo an xx",
    "ze ze",
)


def _expected_fuzzy(query: str, names) -> set[str]:
    """The conformance statement's rule, in Python: every query word starts some name word."""
    from archive.indexing import name_words

    words = name_words(normalize_name(query))
    return {
        name
        for name in names
        if words and all(any(w.startswith(q) for w in name_words(normalize_name(name))) for q in words)
    }


def _fuzzy(query: str, target="study", **params) -> list:
    request = parse_search(
        QueryDict(urlencode({"PatientName": query, "fuzzymatching": "true", **params})), target
    )
    return list(search(request.spec))


def _newest_first(rows) -> list:
    return sorted(rows, key=lambda row: (row.updated_at, row.pk), reverse=True)


@pytest.fixture
def fuzzy_studies():
    return [make_study(name, f"F{index}", "2024-01-01") for index, name in enumerate(FUZZY_NAMES)]


@pytest.mark.parametrize("query", FUZZY_QUERIES)
def test_fuzzy_matches_are_the_prefix_rule(fuzzy_studies, query):
    found = _fuzzy(query)
    assert {study.patient_name for study in found} == _expected_fuzzy(query, FUZZY_NAMES)
    assert found == _newest_first(found)


@pytest.mark.parametrize("query", ["jo do", "ann", "山田", "zz"])
def test_fuzzy_series_search_finds_the_series_of_matching_studies(fuzzy_studies, query):
    found = _fuzzy(query, "series")
    assert {series.study.patient_name for series in found} == _expected_fuzzy(query, FUZZY_NAMES)
    assert found == _newest_first(found)


def test_fuzzy_combined_with_other_conditions(fuzzy_studies):
    make_study("Doe^Jonas", "F-late", "2025-06-01")
    assert {s.patient_name for s in _fuzzy("jo do")} == {"Doe^John", "Doe^Joanna", "Doe^Jonas"}
    assert [s.patient_name for s in _fuzzy("jo do", StudyDate="20250101-")] == ["Doe^Jonas"]
    assert [s.patient_name for s in _fuzzy("jo do", PatientID="F0")] == ["Doe^John"]


def test_renamed_study_changes_its_fuzzy_matches(fuzzy_studies):
    study = fuzzy_studies[0]  # Doe^John
    assert study in _fuzzy("jo do")
    study.patient_name = "Smith^Anna"
    study.patient_name_norm = normalize_name(study.patient_name)
    study.save()
    assert study not in _fuzzy("jo do")
    assert study in _fuzzy("an sm")
    assert [s.patient_name for s in _fuzzy("jo do")] == ["Doe^Joanna"]


def test_fuzzy_paging_is_newest_first_without_gaps_or_repeats():
    """Pages of a fuzzy search (as QIDO reads them) add up to the whole ordered result."""
    from dicomweb.views.search import _rows

    studies = [make_study(f"Doe^John{n}", f"PG{n}", "2024-01-01") for n in range(7)]
    make_study("Smith^Anna", "PG-other", "2024-01-01")
    # Ties on updated_at: the primary key decides.
    tied = timezone.now()
    Study.objects.filter(pk__in=[studies[1].pk, studies[4].pk, studies[5].pk]).update(updated_at=tied)
    expected = [s.study_uid for s in _newest_first(Study.objects.filter(pk__in=[s.pk for s in studies]))]
    queryset = search(parse_search(QueryDict("PatientName=jo%20do&fuzzymatching=true"), "study").spec)
    pages = [[row["study_uid"] for row in _rows(queryset, "study", offset, 3)] for offset in range(0, 9, 3)]
    assert pages[0] + pages[1] + pages[2] == expected
    assert [len(page) for page in pages] == [3, 3, 1]


@pytest.mark.real_services
@pytest.mark.parametrize("name", (*FUZZY_NAMES, "  Leading^^^Spaces  ", "Tab\tName", "x" * 200))
def test_postgresql_name_prefixes_are_every_prefix_of_every_word(name):
    """``archway_name_prefixes`` (migrations 0009, 0012) holds exactly what the Python rule
    matches — every prefix of every word, and the two-letter starts of every two words
    (a word with itself included) in code-point order — and the generated column of a
    study row holds what the function returns."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (elsewhere fuzzy names use PersonNameWord)")
    from archive.indexing import name_words

    normalized = normalize_name(name)
    words = name_words(normalized)
    expected = {word[:n] for word in words for n in range(1, len(word) + 1)}
    expected |= {" ".join(sorted((a[:2], b[:2]))) for i, a in enumerate(words) for b in words[i:]}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsvector_to_array(archway_name_prefixes(%s))", [normalized])
        assert set(cursor.fetchone()[0]) == expected
    study = make_study(name, "PX", "2024-01-01", referring_physician_name_norm=normalized)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tsvector_to_array(patient_name_prefixes),"
            " tsvector_to_array(referring_physician_name_prefixes) FROM archive_study WHERE id = %s",
            [study.pk],
        )
        assert [set(words) for words in cursor.fetchone()] == [expected, expected]


@pytest.mark.real_services
@pytest.mark.parametrize(
    "query, index",
    [
        ("zz", "archive_studynamekey_pkey"),  # two-letter words: the StudyNameKey rows
        ("zz%20yy", "archive_studynamekey_pkey"),
        ("zz%20yyy", "archive_study_pn_prefixes"),  # otherwise the GIN index
        ("zzz%20yyy", "archive_study_pn_prefixes"),
    ],
)
def test_postgresql_fuzzy_study_search_takes_the_matches_from_an_index(fuzzy_studies, query, index):
    """Never a newest-first walk filtering row by row (unbounded when few studies match)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from dicomweb.views.search import _rows

    queryset = search(
        parse_search(QueryDict(f"PatientName={query}&fuzzymatching=true&limit=2"), "study").spec
    )
    page_ids = queryset.values("pk")[:2]
    sql, params = page_ids.query.sql_with_params()
    with connection.cursor() as cursor:
        # Make sorting as unattractive to the planner as it can be: a walk in index order
        # would be taken now if the order allowed one (it does without _MatchesFirst).
        # (No sequential scan either: on a table this small it would be cheapest.)
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan
    assert "archive_study_recent" not in plan
    assert _rows(queryset, "study", 0, 2) == []


def _name_key_rows(study: Study) -> set[tuple[str, str, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT field, key, second FROM archive_studynamekey WHERE study_id = %s", [study.pk])
        return set(cursor.fetchall())


def _expected_name_keys(field: str, name: str, moment: dt.datetime) -> set[tuple[str, str, int]]:
    """The rule in Python: every two words of two letters or more, their two-letter starts."""
    from archive.indexing import name_words

    starts = [word[:2] for word in name_words(normalize_name(name)) if len(word) >= 2]
    second = int(moment.timestamp() // 1)
    return {(field, " ".join(sorted((a, b))), second) for i, a in enumerate(starts) for b in starts[i:]}


@pytest.mark.real_services
@pytest.mark.parametrize("name", (*FUZZY_NAMES, "  Leading^^^Spaces  ", "Tab\tName", "J^Doe", "Ma^Ma^Mary"))
def test_postgresql_name_keys_are_the_pairs_of_two_letter_starts(name):
    """Migration 0013's triggers give a new study exactly the rows ``name_key`` looks up."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (elsewhere fuzzy names use PersonNameWord)")
    study = make_study(name, "PK", "2024-01-01", referring_physician_name_norm=normalize_name("Zed^" + name))
    study.refresh_from_db()
    assert _name_key_rows(study) == _expected_name_keys("P", name, study.updated_at) | _expected_name_keys(
        "R", "Zed^" + name, study.updated_at
    )


@pytest.mark.real_services
def test_postgresql_name_keys_follow_every_change_of_the_study():
    """Whatever writes the study (ORM save, a bulk UPDATE, plain SQL), its rows follow:
    a new second of ``updated_at`` moves them, a new name replaces them, a delete drops them."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    study = make_study("Doe^John", "PK1", "2024-01-01")
    base = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    Study.objects.filter(pk=study.pk).update(updated_at=base)
    assert _name_key_rows(study) == _expected_name_keys("P", "Doe^John", base)
    # The same second: nothing to move (the trigger does not even run).
    Study.objects.filter(pk=study.pk).update(updated_at=base + dt.timedelta(microseconds=999_999))
    assert _name_key_rows(study) == _expected_name_keys("P", "Doe^John", base)
    with connection.cursor() as cursor:  # a hand-made fix in SQL, a second later
        cursor.execute(
            "UPDATE archive_study SET updated_at = %s WHERE id = %s",
            [base + dt.timedelta(seconds=1), study.pk],
        )
    assert _name_key_rows(study) == _expected_name_keys("P", "Doe^John", base + dt.timedelta(seconds=1))

    study.refresh_from_db()
    study.patient_name = "Smith^Anna"
    study.patient_name_norm = normalize_name(study.patient_name)
    study.referring_physician_name_norm = normalize_name("Ray^Mo")
    study.save()
    study.refresh_from_db()
    assert _name_key_rows(study) == _expected_name_keys(
        "P", "Smith^Anna", study.updated_at
    ) | _expected_name_keys("R", "Ray^Mo", study.updated_at)
    assert [s.pk for s in _fuzzy("an sm")] == [study.pk]
    assert _fuzzy("jo do") == []

    Study.objects.filter(pk=study.pk).delete()
    assert _name_key_rows(study) == set()


@pytest.mark.real_services
def test_postgresql_fuzzy_key_pages_are_newest_first_across_seconds():
    """The key rows order by the second, the study row within it: pages of a keyed search
    add up to the newest-first order, with updated_at values on both sides of second
    boundaries and ties broken by primary key."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from dicomweb.views.search import _ready_page, _rows

    base = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    offsets_us = [999_999, 0, 1_000_000, 1_500_000, 999_998, 0, 2_000_001, 1_000_000, 500_000, 1_999_999]
    studies = [make_study(f"Doe^John{n}", f"PS{n}", "2024-01-01") for n in range(len(offsets_us))]
    make_study("Doe^Anna", "PS-other", "2024-01-01")
    for study, offset in zip(studies, offsets_us, strict=True):
        moment = base + dt.timedelta(microseconds=offset)  # the ready text stays current
        Study.objects.filter(pk=study.pk).update(updated_at=moment, search_json_at=moment)
    expected = [s.study_uid for s in _newest_first(Study.objects.filter(pk__in=[s.pk for s in studies]))]
    queryset = search(parse_search(QueryDict("PatientName=jo%20do&fuzzymatching=true"), "study").spec)
    assert "archive_studynamekey" in str(queryset.query)
    pages = [[row["study_uid"] for row in _rows(queryset, "study", offset, 3)] for offset in range(0, 12, 3)]
    assert [uid for page in pages for uid in page] == expected
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    ready = [text for offset in range(0, 12, 4) for text in _ready_page(queryset, offset, 4)]
    results = orjson.loads(studyresult.join_ready(ready, "http://archway"))
    assert [result["0020000D"]["Value"][0] for result in results] == expected
