"""seed_index: synthetic studies for search benchmarks, searchable like stored ones."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.http import QueryDict

from archive.indexing import name_words
from archive.models import Instance, Patient, PersonNameWord, Series, Study
from archive.query import search
from archive.values import normalize_name
from dicomweb.queryparams import parse_search

pytestmark = [pytest.mark.django_db, pytest.mark.both_tiers]


def _search(query: str, target: str = "study") -> list:
    return list(search(parse_search(QueryDict(query), target).spec))


def test_seed_index_fills_searchable_rows():
    call_command("seed_index", studies=50, verbosity=0)

    assert Study.objects.count() == 50
    assert Patient.objects.count() == 26  # studies 1..50, patient = study number // 2
    assert Series.objects.count() == 150
    assert Instance.objects.count() == 450
    study = Study.objects.order_by("pk").first()
    assert study.number_of_series == 3
    assert study.number_of_instances == 9
    assert study.modalities_in_study == "\\".join(
        sorted(set(study.series.values_list("modality", flat=True)))
    )
    assert study.attributes["00100020"]["Value"] == [study.patient.patient_id]
    # Words of every study = its normalized names split into words.
    for study in Study.objects.all():
        patient_words = set(study.name_words.filter(field="P").values_list("word", flat=True))
        assert patient_words == set(name_words(study.patient_name_norm))
        referring_words = set(study.name_words.filter(field="R").values_list("word", flat=True))
        assert referring_words == set(name_words(study.referring_physician_name_norm))

    # PatientID (case-insensitive exact)
    found = _search(f"PatientID={study.patient.patient_id.lower()}")
    assert study in found and all(s.patient_id == study.patient_id for s in found)
    # fuzzy name: first letters of every word
    query = " ".join(word[:2] for word in name_words(study.patient_name_norm))
    assert study in _search(f"PatientName={query}&fuzzymatching=true")
    # date range
    day = study.study_date
    window = f"{(day - dt.timedelta(days=3)):%Y%m%d}-{(day + dt.timedelta(days=3)):%Y%m%d}"
    found = _search(f"StudyDate={window}")
    assert study in found
    assert all(abs((s.study_date - day).days) <= 3 for s in found)
    # series by modality; a study's instances
    modality = study.series.first().modality
    assert all(s.modality == modality for s in _search(f"Modality={modality}", "series"))
    assert len(list(search(parse_search(QueryDict(""), "instance", study_uid=study.study_uid).spec))) == 9


def test_seed_index_runs_add_up():
    call_command("seed_index", studies=2, series_per_study=1, instances_per_series=1, verbosity=0)
    call_command("seed_index", studies=2, series_per_study=1, instances_per_series=1, verbosity=0)
    assert Study.objects.count() == 4
    assert Instance.objects.count() == 4
    # studies 1, 2 | 3, 4 → patients 0, 1 | 1, 2: patient 1 spans both runs and is shared
    assert Patient.objects.count() == 3
    assert Study.objects.filter(patient__patient_id="SP00000001").count() == 2


def test_name_words_follow_study_names():
    call_command("seed_index", studies=1, verbosity=0)
    study = Study.objects.get()
    study.patient_name_norm = normalize_name("Müller-Lüdenscheidt^Hans  Peter=ハンス")
    study.save()
    words = set(PersonNameWord.objects.filter(study=study, field="P").values_list("word", flat=True))
    assert words == {"MULLER-LUDENSCHEIDT", "HANS", "PETER", "ハンス"}
    assert study in _search("PatientName=hans mul&fuzzymatching=true")
    assert study not in _search("PatientName=ans&fuzzymatching=true")
