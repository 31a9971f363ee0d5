"""Default study searches send each study's ready result (``Study.search_json``).

The ready text is written at ingest, on delete and on every ORM save; these tests check
that whatever happened to a study, the default answer is exactly the one built from its
attributes (the path a search that asks for more takes), over HTTP on both tiers.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from archive.models import Study
from archive.studyresult import READY_TAGS, join_ready, ready_json, study_result
from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers

SOP_CLASSES_IN_STUDY = "00080062"


def default_and_built(api, study_uid: str) -> tuple[dict, dict]:
    """(default answer, answer built from the attributes) for one study.

    ``includefield=SOPClassesInStudy`` is not in the ready text, so that search builds
    its result from the attributes; without that one attribute both must be equal.
    """
    default = api.get("/dicomweb/studies", params={"StudyInstanceUID": study_uid})
    built = api.get(
        "/dicomweb/studies", params={"StudyInstanceUID": study_uid, "includefield": "SOPClassesInStudy"}
    )
    assert default.status_code == built.status_code == 200, (default.text, built.text)
    (default_result,) = default.json()
    (built_result,) = built.json()
    assert SOP_CLASSES_IN_STUDY not in default_result
    del built_result[SOP_CLASSES_IN_STUDY]
    return default_result, built_result


def counts(result: dict) -> tuple[list[str], int, int]:
    return (
        result["00080061"].get("Value", []),
        result["00201206"]["Value"][0],
        result["00201208"]["Value"][0],
    )


def test_default_answer_follows_every_change_of_a_study(api) -> None:
    study_uid, ct_series, mr_series = new_uid(), new_uid(), new_uid()
    first = [
        make_dataset(study_uid=study_uid, series_uid=ct_series, modality="CT", StudyDescription="CT chest")
        for _ in range(3)
    ]
    assert stow(api, [to_part10(ds) for ds in first]).status_code == 200
    default, built = default_and_built(api, study_uid)
    assert default == built
    assert counts(default) == (["CT"], 1, 3)
    assert default["00081030"]["Value"] == ["CT chest"]
    (url,) = default["00081190"]["Value"]
    assert url.startswith("http://") and url.endswith(f"/dicomweb/studies/{study_uid}")

    # Another series, newer attributes (latest wins), in a second request.
    mr = make_dataset(study_uid=study_uid, series_uid=mr_series, modality="MR", StudyDescription="CT + MR")
    assert stow(api, [to_part10(mr)]).status_code == 200
    default, built = default_and_built(api, study_uid)
    assert default == built
    assert counts(default) == (["CT", "MR"], 2, 4)
    assert default["00081030"]["Value"] == ["CT + MR"]

    # PUT replaces an instance: counts unchanged, its attributes win.
    replacement = first[0]
    replacement.StudyDescription = "Replaced"
    assert stow(api, [to_part10(replacement)], method="PUT").status_code == 200
    default, built = default_and_built(api, study_uid)
    assert default == built
    assert counts(default) == (["CT", "MR"], 2, 4)

    # Deleting a series recomputes the counts and the modalities.
    assert api.delete(f"/dicomweb/studies/{study_uid}/series/{mr_series}").status_code == 204
    default, built = default_and_built(api, study_uid)
    assert default == built
    assert counts(default) == (["CT"], 1, 3)

    # An ORM save (the admin) writes it too.
    study = Study.objects.get(study_uid=study_uid)
    study.attributes = {**study.attributes, "00081030": {"vr": "LO", "Value": ["Edited"]}}
    study.save(update_fields=["attributes"])
    default, built = default_and_built(api, study_uid)
    assert default == built
    assert default["00081030"]["Value"] == ["Edited"]


def test_a_study_without_ready_text_is_answered_from_its_attributes(api) -> None:
    study_uid = new_uid()
    assert (
        stow(api, [to_part10(make_dataset(study_uid=study_uid, patient_name="Ready^Not"))]).status_code == 200
    )
    expected = api.get("/dicomweb/studies", params={"PatientName": "Ready^Not"}).json()
    Study.objects.filter(study_uid=study_uid).update(search_json="")  # written around save()

    response = api.get("/dicomweb/studies", params={"PatientName": "Ready^Not"})

    assert response.status_code == 200
    assert response.json() == expected
    assert expected[0]["0020000D"]["Value"] == [study_uid]


def stored_study(api, description: str = "Before") -> tuple[str, object]:
    study_uid = new_uid()
    parts = [to_part10(make_dataset(study_uid=study_uid, modality="CT", StudyDescription=description))]
    assert stow(api, parts).status_code == 200
    return study_uid, Study.objects.filter(study_uid=study_uid)


def test_a_current_ready_text_is_what_a_default_search_sends(api) -> None:
    """The stored text itself is sent (not rebuilt) while its stamp matches the row."""
    study_uid, rows = stored_study(api, description="Stored")
    marked = rows.get().search_json.replace('"Stored"', '"Sent as stored"')
    rows.update(search_json=marked)  # same stamp, same search_json_at: still current

    default, built = default_and_built(api, study_uid)

    assert default["00081030"]["Value"] == ["Sent as stored"]
    assert built["00081030"]["Value"] == ["Stored"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda study: {"number_of_instances": 5}, id="a recount (deletion)"),
        pytest.param(lambda study: {"modalities_in_study": "CT\\MR"}, id="the modalities"),
        pytest.param(
            lambda study: {
                "attributes": {**study.attributes, "00081030": {"vr": "LO", "Value": ["After"]}},
                "updated_at": study.updated_at + dt.timedelta(seconds=1),
            },
            id="latest-wins attributes (ingest)",
        ),
    ],
)
def test_rows_changed_around_the_ready_text_are_answered_from_the_row(api, change) -> None:
    """What an older Archway process (during an upgrade) or a hand-made SQL fix would do:
    change the row without rewriting ``search_json``. The stale text must not be sent."""
    study_uid, rows = stored_study(api)
    before, _ = default_and_built(api, study_uid)
    changes = change(rows.get())
    rows.update(**changes)

    default, built = default_and_built(api, study_uid)

    assert default == built
    assert default != before
    if "number_of_instances" in changes:
        assert counts(default)[2] == 5
    if "modalities_in_study" in changes:
        assert counts(default)[0] == ["CT", "MR"]
    if "attributes" in changes:
        assert default["00081030"]["Value"] == ["After"]


def test_ready_text_is_the_built_result_byte_for_byte() -> None:
    """Values that could confuse the root substitution stay as they are."""
    tricky = {
        "00080020": {"vr": "DA", "Value": ["20240105"]},
        "00081030": {"vr": "LO", "Value": ['odd \x1e"/studies/ text \u001e']},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]},
        "00100020": {"vr": "LO"},
        "00080030": {"vr": "TM", "Value": ["101500"]},  # StudyTime: stored, not a default
    }
    root = 'https://pacs.example.org/dicom"web'
    for attributes in (tricky, {}):
        for modalities in ("CT\\MR", ""):
            text = ready_json(
                study_uid="1.2.3",
                attributes=attributes,
                modalities=modalities,
                number_of_series=2,
                number_of_instances=7,
            )
            built = study_result(
                study_uid="1.2.3",
                attributes=attributes,
                modalities=modalities,
                sop_classes=None,
                number_of_series=2,
                number_of_instances=7,
                root=root,
                wanted=READY_TAGS,
            )
            assert join_ready([text, text], root) == orjson.dumps([built, built])
            assert "00080030" not in built
    assert orjson.loads(join_ready([], root)) == []
