"""PS3.4 C.2.2.2 matching types, table-driven, on the index without HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.http import QueryDict

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
