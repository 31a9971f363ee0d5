"""QIDO-RS through the running server (both tiers): parameters, matching, defaults, paging."""

from __future__ import annotations

import pytest

from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers


def value(result: dict, tag: str):
    return result[tag]["Value"][0]


@pytest.fixture
def archive(api):
    """Three studies: Doe^John (CT), Müller^Jürgen (MR + SR), Smith^Anna (CT, 2 series)."""
    studies = {
        "doe": dict(
            patient_name="Doe^John",
            patient_id="P1",
            StudyDate="20240105",
            StudyTime="101500",
            AccessionNumber="A100",
            StudyDescription="CT chest",
            ReferringPhysicianName="House^Gregory",
        ),
        "muller": dict(
            patient_name="Müller^Jürgen",
            patient_id="P2",
            StudyDate="20240210",
            StudyTime="083000",
            AccessionNumber="A200",
            StudyDescription="MR knee",
            ReferringPhysicianName="Wilson^James",
        ),
        "smith": dict(
            patient_name="Smith^Anna",
            patient_id="P3",
            StudyDate="20231231",
            StudyTime="235959",
            AccessionNumber="B300",
            StudyDescription="CT abdomen",
            ReferringPhysicianName="Cuddy^Lisa",
        ),
    }
    made = {}
    for name, attrs in studies.items():
        study_uid = new_uid()
        first_series = new_uid()
        modality = "MR" if name == "muller" else "CT"
        parts = [
            to_part10(
                make_dataset(
                    study_uid=study_uid, series_uid=first_series, modality=modality, InstanceNumber=n, **attrs
                )
            )
            for n in (1, 2)
        ]
        second_modality = "SR" if name == "muller" else "CT"
        if name != "doe":
            parts.append(to_part10(make_dataset(study_uid=study_uid, modality=second_modality, **attrs)))
        response = stow(api, parts)
        assert response.status_code == 200, response.text
        made[name] = study_uid
    return made


def search(api, path="/dicomweb/studies", **params):
    return api.get(path, params=params)


def uids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {value(r, "0020000D") for r in response.json()}


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"PatientID": "P1"}, {"doe"}),
        ({"00100020": "P1"}, {"doe"}),
        ({"PatientID": "p1"}, {"doe"}),  # case-insensitive
        ({"PatientName": "doe^john"}, {"doe"}),
        ({"PatientName": "MULLER^JURGEN"}, {"muller"}),  # accent-insensitive for PN
        ({"PatientName": "Müller*"}, {"muller"}),
        ({"PatientName": "*an*"}, {"smith"}),  # Smith^Anna; Müller^Jürgen folds to JURGEN
        ({"PatientName": "Sm?th^Anna"}, {"smith"}),
        ({"PatientName": "Doe"}, set()),  # single value matching is exact
        ({"AccessionNumber": "A*"}, {"doe", "muller"}),
        ({"StudyDescription": "ct*"}, {"doe", "smith"}),
        ({"StudyDate": "20240105"}, {"doe"}),
        ({"StudyDate": "20240101-20240131"}, {"doe"}),
        ({"StudyDate": "20240101-"}, {"doe", "muller"}),
        ({"StudyDate": "-20240105"}, {"doe", "smith"}),
        ({"ModalitiesInStudy": "SR"}, {"muller"}),
        ({"ModalitiesInStudy": "CT,SR"}, {"doe", "muller", "smith"}),
        ({"ReferringPhysicianName": "wilson^james"}, {"muller"}),
        ({"PatientID": "P1", "StudyDate": "20240210"}, set()),  # ANDed
    ],
)
def test_study_matching(api, archive, params, expected):
    response = search(api, **params)
    if expected:
        assert uids(response) == {archive[name] for name in expected}
    else:
        assert response.status_code == 204


def test_uid_list_matching_with_comma_and_backslash(api, archive):
    assert uids(search(api, StudyInstanceUID=f"{archive['doe']},{archive['smith']}")) == {
        archive["doe"],
        archive["smith"],
    }
    assert uids(search(api, StudyInstanceUID=f"{archive['doe']}\\{archive['muller']}")) == {
        archive["doe"],
        archive["muller"],
    }


@pytest.mark.parametrize(
    "query,expected",
    [
        ("joh", {"doe"}),
        ("do", {"doe"}),
        ("jo do", {"doe"}),
        ("Doe", {"doe"}),
        ("John Doe", {"doe"}),
        ("ohn", set()),
        ("jürg", {"muller"}),
        ("mul", {"muller"}),
    ],
)
def test_fuzzy_matching_is_a_prefix_of_any_name_component(api, archive, query, expected):
    response = search(api, PatientName=query, fuzzymatching="true")
    if expected:
        assert uids(response) == {archive[name] for name in expected}
    else:
        assert response.status_code == 204


def test_combined_date_time_range(api, archive):
    # 2024-01-05 10:15 (doe) is inside; 2023-12-31 23:59:59 (smith) and 2024-02-10 08:30 (muller) are not.
    response = search(api, StudyDate="20231231-20240210", StudyTime="235960-080000")
    assert response.status_code == 400  # 60 seconds is not a valid range bound
    response = search(api, StudyDate="20231231-20240210", StudyTime="235959.5-083000")
    assert uids(response) == {archive["doe"], archive["muller"]}
    response = search(api, StudyDate="20231231-20240210", StudyTime="235959.5-082959")
    assert uids(response) == {archive["doe"]}


# --- levels -------------------------------------------------------------------------------------


def test_study_defaults_and_computed_attributes(api, archive, live_url):
    (result,) = search(api, PatientID="P2").json()
    assert value(result, "00100010") == {"Alphabetic": "Müller^Jürgen"}
    assert value(result, "00080020") == "20240210"
    assert value(result, "00080050") == "A200"
    assert result["00080061"]["Value"] == ["MR", "SR"]
    assert value(result, "00201206") == 2
    assert value(result, "00201208") == 3
    assert value(result, "00081190") == f"{live_url}/dicomweb/studies/{archive['muller']}"
    assert "00100040" not in result  # PatientSex is not a default
    (everything,) = search(api, PatientID="P2", includefield="all").json()
    assert value(everything, "00100040") == "O"
    assert "00080062" in everything
    (some,) = search(api, PatientID="P2", includefield="00100040,StudyID").json()
    assert value(some, "00100040") == "O" and value(some, "00200010") == "1"


def test_all_series_carries_study_attributes(api, archive):
    response = search(api, "/dicomweb/series", Modality="SR")
    (result,) = response.json()
    assert value(result, "00080060") == "SR"
    assert value(result, "0020000D") == archive["muller"]
    assert value(result, "00100020") == "P2"  # study-level attribute on an all-series search
    assert value(result, "00201209") == 1


def test_study_series(api, archive):
    response = search(api, f"/dicomweb/studies/{archive['smith']}/series")
    results = response.json()
    assert len(results) == 2
    assert all("00100020" not in r for r in results)  # no study attributes when the study is in the path
    assert {value(r, "00201209") for r in results} == {1, 2}


def test_instances_of_a_study_carry_series_attributes(api, archive):
    response = search(api, f"/dicomweb/studies/{archive['muller']}/instances", Modality="MR")
    results = response.json()
    assert len(results) == 2
    assert all(value(r, "00080060") == "MR" for r in results)
    assert all("00080018" in r and "00081190" in r for r in results)


def test_all_instances_with_instance_attributes(api, archive):
    response = search(api, "/dicomweb/instances", PatientID="P1", InstanceNumber="2", includefield="00280010")
    (result,) = response.json()
    assert value(result, "00200013") == 2
    assert value(result, "00280010") == 16
    assert value(result, "00100020") == "P1"


def test_includefield_bulk_attribute_has_absolute_uri(api, archive, live_url):
    (result,) = search(
        api, "/dicomweb/instances", PatientID="P1", InstanceNumber="1", includefield="7FE00010"
    ).json()
    assert result["7FE00010"]["BulkDataURI"].startswith(
        f"{live_url}/dicomweb/studies/{archive['doe']}/series/"
    )


# --- paging -------------------------------------------------------------------------------------


def test_paging_is_stable_and_complete(api, archive):
    seen = []
    for offset in range(3):
        response = search(api, limit="1", offset=str(offset))
        (result,) = response.json()
        seen.append(value(result, "0020000D"))
    assert sorted(seen) == sorted(archive.values())
    assert search(api, offset="3").status_code == 204
    # newest first
    assert seen[0] == archive["smith"]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,named",
    [
        ({"NoSuchKeyword": "x"}, "NoSuchKeyword"),
        ({"PatientSex": "M"}, "PatientSex"),  # a real attribute, not searchable
        ({"SOPInstanceUID": "1.2.3"}, "SOPInstanceUID"),  # instance attribute on a study search
        ({"PatientID": ""}, "PatientID"),
        ({"StudyDate": "-"}, "StudyDate"),
        ({"StudyDate": "2024"}, "StudyDate"),
        ({"StudyDate": "20240230"}, "StudyDate"),
        ({"StudyInstanceUID": "1.2.x_y"}, "StudyInstanceUID"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
        ({"includefield": "NotAKeyword"}, "NotAKeyword"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api, archive, params, named):
    response = search(api, **params)
    assert response.status_code == 400
    assert named in response.json()["detail"]


def test_xml_results(api, archive):
    response = api.get(
        "/dicomweb/studies",
        params={"PatientID": "P1"},
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert response.status_code == 200
    assert b"NativeDicomModel" in response.content


def test_unauthenticated_search_is_401(anonymous, archive):
    assert anonymous.get("/dicomweb/studies").status_code == 401


def test_percent_encoded_values_are_decoded(api, archive):
    response = api.get("/dicomweb/studies?PatientName=M%C3%BCller%5EJ%C3%BCrgen")
    assert uids(response) == {archive["muller"]}
    response = api.get("/dicomweb/studies?PatientName=Doe%2A")
    assert uids(response) == {archive["doe"]}


def test_includefield_not_kept_at_the_level_is_a_299_warning(api, archive):
    response = search(api, PatientID="P1", includefield="00280010")
    assert response.status_code == 200
    assert response.headers["warning"].startswith('299 archway "includefield 00280010 not available')
    assert "warning" not in search(api, PatientID="P1", includefield="00100040").headers
