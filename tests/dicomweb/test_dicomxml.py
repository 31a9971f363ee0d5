"""DICOM XML (PS3.19 Native DICOM Model) <-> DICOM JSON: structure, round trips, refusals.

Pure unit tests (no database, no server): the XML is inspected with ElementTree queries,
and every hand-written data set must come back from XML exactly as it went in.
"""

from __future__ import annotations

import copy
import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pydicom
import pytest

from archive.metadata import dataset_to_json
from dicomweb.dicomxml import NAMESPACE, DicomXmlError, datasets_to_xml_parts, json_to_xml, xml_to_json
from tests.testdata import readable_part10_files

NS = {"d": NAMESPACE}
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)


def attribute(root: ET.Element, tag: str) -> ET.Element:
    """The one DicomAttribute child of ``root`` with this tag (fails if absent or repeated)."""
    found = root.findall(f"d:DicomAttribute[@tag='{tag}']", NS)
    assert len(found) == 1, f"{tag}: {len(found)} DicomAttribute elements"
    return found[0]


def canonical(data: Any) -> str:
    """Type-exact comparison form: unlike ``==``, tells 1 from 1.0 and True from 1."""
    return json.dumps(data, sort_keys=True)


def round_trip(dataset: dict[str, Any]) -> dict[str, Any]:
    return xml_to_json(json_to_xml(dataset))


# A data set with every VR, multi-valued and empty elements, nulls inside multi-values,
# Person Names with all three groups, sequences two levels deep, InlineBinary, BulkDataURI
# and a private block.
EVERY_VR: dict[str, Any] = {
    "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
    "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},
    "00080012": {"vr": "DA", "Value": ["20240102"]},
    "00080013": {"vr": "TM", "Value": ["101010.123456"]},
    "00080015": {"vr": "DT", "Value": ["20240102101010.123456+0100"]},
    "00080050": {"vr": "SH", "Value": ["ACC-1"]},
    "00080054": {"vr": "AE", "Value": ["ARCHWAY", "OTHER_AE"]},
    "00080081": {"vr": "ST", "Value": ["1 Main St.\r\nSpringfield"]},
    "00080090": {
        "vr": "PN",
        "Value": [
            {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"},
            {},
            {"Alphabetic": "Doe^John^Q^Dr.^Jr."},
        ],
    },
    "00080108": {"vr": "LT", "Value": ["  leading spaces\nand a second line"]},
    "0008010E": {"vr": "UR", "Value": ["http://example.com/a?b=1&c=2"]},
    "00080119": {"vr": "UC", "Value": ["long code value", "another"]},
    "0008030E": {"vr": "UT", "Value": ["<b>bold</b> & 'quoted' \"text\" ]]>"]},
    "0008040C": {"vr": "UV", "Value": [0, 18446744073709551615]},
    "0008041B": {"vr": "OB", "InlineBinary": "AAECAw=="},
    "00081030": {"vr": "LO"},
    "00081163": {"vr": "FD", "Value": [0.1, -2.5e-300, 3.0]},
    "00081160": {"vr": "IS", "Value": [1, -2, None, 40]},
    "00082130": {"vr": "DS", "Value": [0.5, 1e-05, 3, -0.0, 12345678.9]},
    "00089459": {"vr": "FL", "Value": [29.969999313354492]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Anna"}]},
    "00100020": {"vr": "LO", "Value": ["ID-1"]},
    "00101010": {"vr": "AS", "Value": ["045Y"]},
    "00180015": {"vr": "CS"},
    "00181638": {"vr": "OF", "InlineBinary": "AACAPwAAAEA="},
    "00186020": {"vr": "SL", "Value": [-5, 2147483647]},
    "00189219": {"vr": "SS", "Value": [-3]},
    "00209165": {"vr": "AT", "Value": ["00100010", "7FE00010"]},
    "00281201": {"vr": "OW", "BulkDataURI": "bulkdata/00281201"},
    "003A032E": {"vr": "OD", "BulkDataURI": "bulkdata/003A032E"},
    "00410010": {"vr": "LO", "Value": ["ACME 1.0"]},
    "00411001": {"vr": "LO", "Value": ["private text"]},
    "00411002": {"vr": "US", "Value": [7, 8]},
    "00660040": {"vr": "OL", "InlineBinary": "AQAAAAIAAAA="},
    "0072006D": {"vr": "UN", "InlineBinary": "/w=="},
    "00720081": {"vr": "OV", "BulkDataURI": "bulkdata/00720081"},
    "00720082": {"vr": "SV", "Value": [-9223372036854775808, 5]},
    "00081115": {
        "vr": "SQ",
        "Value": [
            {
                "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
                "00081199": {
                    "vr": "SQ",
                    "Value": [
                        {
                            "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                            "00081155": {"vr": "UI", "Value": ["1.2.3.4.5"]},
                        },
                        {"00081155": {"vr": "UI", "Value": ["1.2.3.4.6"]}, "00081160": {"vr": "IS"}},
                    ],
                },
            },
            {},
            {"0020000E": {"vr": "UI", "Value": ["1.2.3.5"]}, "00081199": {"vr": "SQ"}},
        ],
    },
    "00280010": {"vr": "US", "Value": [512]},
    "00281101": {"vr": "US", "Value": [256, 0, 16]},
    "0040A132": {"vr": "UL", "Value": [1, 4294967295]},
    "7FE00010": {"vr": "OW", "BulkDataURI": "bulkdata/7FE00010"},
}


def test_every_vr_is_covered_by_the_round_trip_data_set():
    vrs: set[str] = set()

    def walk(dataset: dict[str, Any]) -> None:
        for element in dataset.values():
            vrs.add(element["vr"])
            if element["vr"] == "SQ":
                for item in element.get("Value", []):
                    walk(item)

    walk(EVERY_VR)
    every = (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT"
    )
    assert vrs == {*every.split(), "UV"}


# ------------------------------------------------------------------ document structure


def test_document_is_utf8_xml_with_the_native_model_root_namespace_and_xml_space():
    document = json_to_xml(EVERY_VR)
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = parse(document)
    assert root.tag == f"{{{NAMESPACE}}}NativeDicomModel"
    assert root.get(XML_SPACE) == "preserve"
    assert all(child.tag == f"{{{NAMESPACE}}}DicomAttribute" for child in root)
    assert "山田".encode() in document  # real UTF-8, not character references


def test_exact_bytes_of_a_small_document():
    dataset = {
        "00280010": {"vr": "US", "Value": [512]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
        "00081030": {"vr": "LO"},
    }
    assert json_to_xml(dataset) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">'
        b'<DicomAttribute tag="00081030" vr="LO" keyword="StudyDescription"/>'
        b'<DicomAttribute tag="00100010" vr="PN" keyword="PatientName"><PersonName number="1">'
        b"<Alphabetic><FamilyName>Doe</FamilyName><GivenName>John</GivenName></Alphabetic>"
        b"</PersonName></DicomAttribute>"
        b'<DicomAttribute tag="00280010" vr="US" keyword="Rows"><Value number="1">512</Value>'
        b"</DicomAttribute>"
        b"</NativeDicomModel>"
    )


def test_elements_come_out_in_tag_order_whatever_the_json_order():
    dataset = {
        "00200013": {"vr": "IS", "Value": [1]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "A"}]},
        "00080018": {"vr": "UI", "Value": ["1.2"]},
    }
    root = parse(json_to_xml(dataset))
    assert [child.get("tag") for child in root] == ["00080018", "00080060", "00100010", "00200013"]


def test_tag_vr_and_keyword_attributes():
    dataset = {
        "00100020": {"vr": "LO", "Value": ["ID"]},
        "60003000": {"vr": "OW", "BulkDataURI": "bulkdata/60003000"},
        "12340010": {"vr": "LO", "Value": ["not in the dictionary"]},
    }
    root = parse(json_to_xml(dataset))
    patient_id = attribute(root, "00100020")
    assert patient_id.get("vr") == "LO"
    assert patient_id.get("keyword") == "PatientID"
    assert patient_id.get("privateCreator") is None
    assert attribute(root, "60003000").get("keyword") == "OverlayData"  # repeating group
    assert "keyword" not in attribute(root, "12340010").attrib


def test_values_are_numbered_from_one_and_nulls_keep_their_number():
    root = parse(json_to_xml({"00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL", ""]}}))
    values = attribute(root, "00080008").findall("d:Value", NS)
    assert [value.get("number") for value in values] == ["1", "2", "3", "4"]
    assert [value.text for value in values] == ["ORIGINAL", None, "AXIAL", None]


def test_empty_element_has_no_children():
    root = parse(json_to_xml({"00081030": {"vr": "LO"}, "00081199": {"vr": "SQ"}}))
    assert len(attribute(root, "00081030")) == 0
    assert len(attribute(root, "00081199")) == 0


def test_numbers_are_written_as_json_writes_them():
    dataset = {
        "00081160": {"vr": "IS", "Value": [1, -2]},
        "00082130": {"vr": "DS", "Value": [0.5, 1e-05, 3, 2.0]},
        "00081163": {"vr": "FD", "Value": [0.1]},
        "00280010": {"vr": "US", "Value": [512]},
    }
    root = parse(json_to_xml(dataset))

    def texts(tag: str) -> list[str | None]:
        return [value.text for value in attribute(root, tag).findall("d:Value", NS)]

    assert texts("00081160") == ["1", "-2"]
    assert texts("00082130") == ["0.5", "1e-05", "3", "2.0"]
    assert texts("00081163") == ["0.1"]
    assert texts("00280010") == ["512"]


def test_person_name_groups_and_components():
    root = parse(json_to_xml(EVERY_VR))
    names = attribute(root, "00080090").findall("d:PersonName", NS)
    assert [name.get("number") for name in names] == ["1", "2", "3"]
    first, second, third = names
    assert first.findtext("d:Alphabetic/d:FamilyName", namespaces=NS) == "Yamada"
    assert first.findtext("d:Alphabetic/d:GivenName", namespaces=NS) == "Tarou"
    assert first.findtext("d:Ideographic/d:FamilyName", namespaces=NS) == "山田"
    assert first.findtext("d:Phonetic/d:GivenName", namespaces=NS) == "たろう"
    assert first.find("d:Alphabetic/d:MiddleName", NS) is None
    assert len(second) == 0  # a null name keeps its number
    alphabetic = third.find("d:Alphabetic", NS)
    assert [child.tag.split("}")[1] for child in alphabetic] == [
        "FamilyName",
        "GivenName",
        "MiddleName",
        "NamePrefix",
        "NameSuffix",
    ]
    assert [child.text for child in alphabetic] == ["Doe", "John", "Q", "Dr.", "Jr."]
    assert third.find("d:Ideographic", NS) is None


def test_person_name_trailing_carets_and_surplus_components_survive():
    names = [{"Alphabetic": "Doe^John^^^"}, {"Alphabetic": "A^B^C^D^E^F"}, {"Alphabetic": "^Given"}]
    dataset = {"00100010": {"vr": "PN", "Value": names}}
    root = parse(json_to_xml(dataset))
    person = attribute(root, "00100010").findall("d:PersonName", NS)
    assert person[1].findtext("d:Alphabetic/d:NameSuffix", namespaces=NS) == "E^F"
    assert person[2].findtext("d:Alphabetic/d:GivenName", namespaces=NS) == "Given"
    assert round_trip(dataset) == dataset


def test_a_plain_string_person_name_is_split_on_equals_and_carets():
    root = parse(json_to_xml({"00100010": {"vr": "PN", "Value": ["Yamada^Tarou=山田^太郎"]}}))
    name = attribute(root, "00100010").find("d:PersonName", NS)
    assert name.findtext("d:Alphabetic/d:GivenName", namespaces=NS) == "Tarou"
    assert name.findtext("d:Ideographic/d:FamilyName", namespaces=NS) == "山田"


def test_bulk_data_and_inline_binary():
    root = parse(json_to_xml(EVERY_VR))
    bulk = attribute(root, "7FE00010").findall("d:BulkData", NS)
    assert [element.get("uri") for element in bulk] == ["bulkdata/7FE00010"]
    assert len(attribute(root, "7FE00010")) == 1
    assert attribute(root, "0008041B").findtext("d:InlineBinary", namespaces=NS) == "AAECAw=="


def test_nested_sequences_number_their_items_at_every_level():
    root = parse(json_to_xml(EVERY_VR))
    items = attribute(root, "00081115").findall("d:Item", NS)
    assert [item.get("number") for item in items] == ["1", "2", "3"]
    assert len(items[1]) == 0  # the empty item is still there
    inner = attribute(items[0], "00081199").findall("d:Item", NS)
    assert [item.get("number") for item in inner] == ["1", "2"]
    assert attribute(inner[1], "00081155").findtext("d:Value[@number='1']", namespaces=NS) == "1.2.3.4.6"
    assert attribute(inner[0], "00081150").get("keyword") == "ReferencedSOPClassUID"
    xpath = "d:DicomAttribute[@keyword='ReferencedSeriesSequence']/d:Item[@number='1']/d:DicomAttribute"
    assert [element.get("tag") for element in root.findall(xpath, NS)] == ["00081199", "0020000E"]


def test_private_elements_name_their_creator_and_drop_the_block_from_the_tag():
    root = parse(json_to_xml(EVERY_VR))
    private = root.findall("d:DicomAttribute[@privateCreator='ACME 1.0']", NS)
    # PS3.19 A.1.5: a private element's tag is gggg00ee, its block given by privateCreator.
    assert [element.get("tag") for element in private] == ["00410001", "00410002"]
    assert all("keyword" not in element.attrib for element in private)
    assert private[0].findtext("d:Value", namespaces=NS) == "private text"
    creator = [element for element in root.findall("d:DicomAttribute[@tag='00410010']", NS)]
    assert len(creator) == 1
    assert creator[0].get("privateCreator") is None
    assert creator[0].findtext("d:Value", namespaces=NS) == "ACME 1.0"
    # Document order is binary DICOM order: the creator, then its block.
    tags = [element.get("tag") for element in root if element.get("tag").startswith("0041")]
    assert tags == ["00410010", "00410001", "00410002"]


def test_private_element_without_its_creator_keeps_its_full_tag():
    dataset = {"00291005": {"vr": "LO", "Value": ["orphan"]}}
    root = parse(json_to_xml(dataset))
    orphan = attribute(root, "00291005")
    assert orphan.get("privateCreator") is None
    assert round_trip(dataset) == dataset


def test_private_blocks_with_the_same_creator_round_trip():
    dataset = {
        "00290010": {"vr": "LO", "Value": ["SAME"]},
        "00290011": {"vr": "LO", "Value": ["SAME"]},
        "00290012": {"vr": "LO", "Value": ["OTHER"]},
        "00291001": {"vr": "LO", "Value": ["block 10"]},
        "00291101": {"vr": "LO", "Value": ["block 11"]},
        "00291201": {"vr": "US", "Value": [12]},
    }
    assert round_trip(dataset) == dataset


def test_private_creator_without_creator_element_gets_a_free_block():
    document = f"""<NativeDicomModel xmlns="{NAMESPACE}">
      <DicomAttribute tag="00290010" vr="LO"><Value number="1">TAKEN</Value></DicomAttribute>
      <DicomAttribute tag="00290005" vr="SH" privateCreator="NEW"><Value number="1">x</Value></DicomAttribute>
    </NativeDicomModel>""".encode()
    assert xml_to_json(document) == {
        "00290010": {"vr": "LO", "Value": ["TAKEN"]},
        "00290011": {"vr": "LO", "Value": ["NEW"]},
        "00291105": {"vr": "SH", "Value": ["x"]},
    }


def test_full_private_tag_with_private_creator_is_accepted_as_is():
    document = f"""<NativeDicomModel xmlns="{NAMESPACE}">
      <DicomAttribute tag="00290010" vr="LO"><Value number="1">ACME</Value></DicomAttribute>
      <DicomAttribute tag="00291005" vr="SH" privateCreator="ACME"><Value number="1">x</Value>
      </DicomAttribute>
    </NativeDicomModel>""".encode()
    assert xml_to_json(document) == {
        "00290010": {"vr": "LO", "Value": ["ACME"]},
        "00291005": {"vr": "SH", "Value": ["x"]},
    }


def test_group_length_is_left_out():
    root = parse(json_to_xml({"00080000": {"vr": "UL", "Value": [10]}, "00080060": {"vr": "CS"}}))
    assert [child.get("tag") for child in root] == ["00080060"]


# ------------------------------------------------------------------ escaping


def test_markup_characters_in_values_and_attributes_are_escaped():
    dataset = {
        "00080081": {"vr": "ST", "Value": ["a < b && c > d \"q\" 'a' ]]> &amp;"]},
        "00090010": {"vr": "LO", "Value": ['Creator <&> "x"\tTAB']},
        "00091001": {"vr": "LO", "Value": ["v"]},
        "7FE00010": {"vr": "OW", "BulkDataURI": 'http://h/x?a=1&b="2"<3>'},
    }
    document = json_to_xml(dataset)
    root = parse(document)
    assert attribute(root, "00080081").findtext("d:Value", namespaces=NS) == dataset["00080081"]["Value"][0]
    assert attribute(root, "00090001").get("privateCreator") == 'Creator <&> "x"\tTAB'
    assert attribute(root, "7FE00010").find("d:BulkData", NS).get("uri") == 'http://h/x?a=1&b="2"<3>'
    assert round_trip(dataset) == dataset


def test_tab_lf_and_cr_survive_exactly():
    text = "a\tb\nc\r\nd\re"
    dataset = {"00204000": {"vr": "LT", "Value": [text]}}
    assert attribute(parse(json_to_xml(dataset)), "00204000").findtext("d:Value", namespaces=NS) == text
    assert round_trip(dataset) == dataset


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",
        "\x01\x02\x08",
        "esc\x1b$B",
        "vt\x0bff\x0c",
        "us\x1f",
        "nonchar\ufffe\uffff",
        "lone\ud800surrogate",
    ],
)
def test_characters_xml_cannot_carry_become_replacement_characters(value):
    dataset = {
        "00100020": {"vr": "LO", "Value": [value]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"Fam{value}^Given"}]},
        "00090010": {"vr": "LO", "Value": [f"creator{value}"]},
        "00091001": {"vr": "LO", "Value": ["x"]},
        "7FE00010": {"vr": "OW", "BulkDataURI": f"bulkdata/{value}"},
    }
    document = json_to_xml(dataset)  # must not raise (a lone surrogate cannot be UTF-8 encoded)
    root = parse(document)  # must be well-formed
    illegal = {chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"} | {"\ufffe", "\uffff", "\ud800"}
    expected = "".join("\ufffd" if ch in illegal else ch for ch in value)
    assert expected != value
    assert attribute(root, "00100020").findtext("d:Value", namespaces=NS) == expected
    assert attribute(root, "00090001").get("privateCreator") == f"creator{expected}"
    back = xml_to_json(document)
    assert back["00100020"]["Value"] == [expected]
    assert back["00100010"]["Value"] == [{"Alphabetic": f"Fam{expected}^Given"}]
    assert back["7FE00010"]["BulkDataURI"] == f"bulkdata/{expected}"


# ------------------------------------------------------------------ round trips


def test_every_vr_round_trips_exactly():
    original = copy.deepcopy(EVERY_VR)
    back = round_trip(EVERY_VR)
    assert original == EVERY_VR  # the input is not modified
    assert back == EVERY_VR
    assert canonical(back) == canonical(EVERY_VR)  # same number types too (3 stays int, 3.0 float)


def test_decoded_numbers_have_json_types():
    back = round_trip(EVERY_VR)
    assert back["00082130"]["Value"] == [0.5, 1e-05, 3, -0.0, 12345678.9]
    assert [type(v) for v in back["00082130"]["Value"]] == [float, float, int, float, float]
    assert back["00081160"]["Value"] == [1, -2, None, 40]
    assert all(type(v) is int for v in back["00281101"]["Value"])
    assert all(type(v) is float for v in back["00081163"]["Value"])
    assert back["00209165"]["Value"] == ["00100010", "7FE00010"]


def test_null_person_name_comes_back_as_empty_object():
    dataset = {"00100010": {"vr": "PN", "Value": [None, {"Alphabetic": "A"}]}}
    assert round_trip(dataset) == {"00100010": {"vr": "PN", "Value": [{}, {"Alphabetic": "A"}]}}


def test_empty_person_name_group_round_trips():
    dataset = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "", "Ideographic": "山田^太郎"}]}}
    assert round_trip(dataset) == dataset


def _empty_strings_as_null(data: Any) -> Any:
    """PS3.19 has one zero-length value form; PS3.18 JSON writes it ``null``.

    pydicom's own ``to_json_dict`` (Archway's slow path, e.g. for ISO 2022 character sets)
    writes ``""`` instead, which necessarily comes back from XML as ``null``.
    """
    if isinstance(data, dict):
        return {key: _empty_strings_as_null(value) for key, value in data.items()}
    if isinstance(data, list):
        return [None if value == "" else _empty_strings_as_null(value) for value in data]
    return data


@pytest.mark.parametrize("path", readable_part10_files(), ids=lambda p: p.name)
def test_every_bundled_file_round_trips_through_xml(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, stop_before_pixels=True, defer_size=65536)
    original = dataset_to_json(dataset)
    document = json_to_xml(original)
    parse(document)  # well-formed
    back = xml_to_json(document)
    expected = _empty_strings_as_null(original)
    assert back == expected
    assert canonical(back) == canonical(expected)


def test_the_empty_string_normalisation_is_actually_needed_and_narrow():
    # Guards the corpus test's normaliser: "" becomes null and nothing else changes.
    dataset = {"00080005": {"vr": "CS", "Value": ["", "ISO 2022 IR 87"]}}
    assert round_trip(dataset) != dataset
    assert round_trip(dataset) == _empty_strings_as_null(dataset)
    assert _empty_strings_as_null(EVERY_VR) == EVERY_VR


def test_datasets_to_xml_parts_yields_one_document_per_dataset_lazily():
    consumed = []

    def datasets():
        for number in range(3):
            consumed.append(number)
            yield {"00200013": {"vr": "IS", "Value": [number]}}

    parts = datasets_to_xml_parts(datasets())
    first = next(parts)
    assert consumed == [0]
    rest = list(parts)
    assert consumed == [0, 1, 2]
    documents = [first, *rest]
    assert [xml_to_json(document)["00200013"]["Value"] for document in documents] == [[0], [1], [2]]
    assert all(document.count(b"<?xml") == 1 for document in documents)


# ------------------------------------------------------------------ decoding other writers' XML


def test_pretty_printed_input_without_keywords_in_any_order():
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="{NAMESPACE}" xml:space="preserve">
  <DicomAttribute tag="00280010" vr="US">
    <Value number="1">512</Value>
  </DicomAttribute>
  <DicomAttribute tag="00080008" vr="CS" keyword="IgnoredAnyway">
    <Value number="3">AXIAL</Value>
    <Value number="1">ORIGINAL</Value>
  </DicomAttribute>
  <DicomAttribute tag="00100010" vr="PN">
    <PersonName number="1">
      <Alphabetic>
        <GivenName>John</GivenName>
        <FamilyName>Doe</FamilyName>
      </Alphabetic>
    </PersonName>
  </DicomAttribute>
  <DicomAttribute tag="00100020">
    <Value number="1">ID</Value>
  </DicomAttribute>
  <DicomAttribute tag="0008041B" vr="OB">
    <InlineBinary>
      AAEC
      Aw==
    </InlineBinary>
  </DicomAttribute>
</NativeDicomModel>
""".encode()
    assert xml_to_json(document) == {
        "00280010": {"vr": "US", "Value": [512]},
        "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},  # a gap is a null
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
        "00100020": {"vr": "LO", "Value": ["ID"]},  # vr from the data dictionary
        "0008041B": {"vr": "OB", "InlineBinary": "AAECAw=="},
    }


def test_document_without_namespace_is_tolerated():
    document = b'<NativeDicomModel><DicomAttribute tag="00100020" vr="LO"><Value number="1">X</Value>'
    document += b"</DicomAttribute></NativeDicomModel>"
    assert xml_to_json(document) == {"00100020": {"vr": "LO", "Value": ["X"]}}


def test_lower_case_hex_in_tags_and_at_values_is_normalised():
    document = (
        f'<NativeDicomModel xmlns="{NAMESPACE}"><DicomAttribute tag="7fe00010" vr="OW">'
        '<BulkData uri="u"/></DicomAttribute><DicomAttribute tag="00209165" vr="AT">'
        '<Value number="1">7fe00010</Value></DicomAttribute></NativeDicomModel>'
    ).encode()
    assert xml_to_json(document) == {
        "7FE00010": {"vr": "OW", "BulkDataURI": "u"},
        "00209165": {"vr": "AT", "Value": ["7FE00010"]},
    }


def test_invalid_ds_and_is_text_is_kept_as_a_string():
    document = (
        f'<NativeDicomModel xmlns="{NAMESPACE}"><DicomAttribute tag="00082130" vr="DS">'
        '<Value number="1">1.5abc</Value><Value number="2"> 2.5 </Value></DicomAttribute>'
        '<DicomAttribute tag="00081160" vr="IS"><Value number="1">1.5</Value>'
        '<Value number="2">+7</Value></DicomAttribute></NativeDicomModel>'
    ).encode()
    assert xml_to_json(document) == {
        "00082130": {"vr": "DS", "Value": ["1.5abc", 2.5]},
        "00081160": {"vr": "IS", "Value": ["1.5", 7]},
    }


# ------------------------------------------------------------------ refusals


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
<DicomAttribute tag="00100020" vr="LO"><Value number="1">&lol3;</Value></DicomAttribute>
</NativeDicomModel>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
<DicomAttribute tag="00100020" vr="LO"><Value number="1">&x;</Value></DicomAttribute>
</NativeDicomModel>"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b'<!DOCTYPE NativeDicomModel SYSTEM "http://example.com/x.dtd"><NativeDicomModel/>',
        b"\xef\xbb\xbf" + BILLION_LAUGHS.split(b"\n", 1)[1],  # UTF-8 byte order mark first
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "bom"],
)
def test_dtds_and_entities_are_refused(document):
    with pytest.raises(DicomXmlError, match="DOCTYPE"):
        xml_to_json(document)


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
        .decode()
        .encode("utf-16"),
        BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="latin-1"?>'),
        '<NativeDicomModel><DicomAttribute tag="00100020" vr="LO"><Value number="1">é</Value>'
        "</DicomAttribute></NativeDicomModel>".encode("latin-1"),
    ],
    ids=["utf-16", "declared-latin-1", "undeclared-latin-1"],
)
def test_documents_that_are_not_utf8_are_refused(document):
    with pytest.raises(DicomXmlError, match="UTF-8"):
        xml_to_json(document)


def _doc(body: str) -> bytes:
    return f'<NativeDicomModel xmlns="{NAMESPACE}">{body}</NativeDicomModel>'.encode()


SEQUENCE_WITH_BAD_ITEM = (
    '<DicomAttribute tag="00081115" vr="SQ"><Item number="1">'
    '<DicomAttribute tag="00081199" vr="SQ"><Item number="1">'
    '<DicomAttribute tag="00081155" vr="UI"><Value number="x">1.2</Value></DicomAttribute>'
    "</Item></DicomAttribute></Item></DicomAttribute>"
)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<Foo/>", "unknown root element 'Foo'"),
        (b'<NativeDicomModel xmlns="urn:other"/>', "unknown root element"),
        (_doc("").replace(b"</NativeDicomModel>", b""), "not well-formed"),
        (_doc('<Value number="1">x</Value>'), "unexpected element <Value>"),
        (_doc('<DicomAttribute vr="LO"/>'), "without a tag attribute"),
        (_doc('<DicomAttribute tag="0010001G" vr="LO"/>'), "'0010001G': bad tag format"),
        (_doc('<DicomAttribute tag="0010" vr="LO"/>'), "'0010': bad tag format"),
        (_doc('<DicomAttribute tag="00091010"/>'), "00091010: missing vr"),
        (_doc('<DicomAttribute tag="00280106"/>'), "00280106: missing vr"),  # "US or SS"
        (_doc('<DicomAttribute tag="00100020" vr="XX"/>'), "00100020: unknown vr 'XX'"),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><Value number="one">a</Value></DicomAttribute>'),
            "00100020: Value has number 'one'",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><Value number="0">a</Value></DicomAttribute>'),
            "00100020: Value has number '0'",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><Value>a</Value></DicomAttribute>'),
            "00100020: Value without a number",
        ),
        (
            _doc(
                '<DicomAttribute tag="00080008" vr="CS"><Value number="1">A</Value>'
                '<Value number="1">B</Value></DicomAttribute>'
            ),
            "00080008: two Value elements with number 1",
        ),
        (
            _doc('<DicomAttribute tag="00280010" vr="US"><Value number="1">abc</Value></DicomAttribute>'),
            "00280010: Value 1 'abc' is not an integer",
        ),
        (
            _doc('<DicomAttribute tag="00081163" vr="FD"><Value number="1">1_0</Value></DicomAttribute>'),
            "00081163: Value 1 '1_0' is not a number",
        ),
        (
            _doc(
                '<DicomAttribute tag="00209165" vr="AT"><Value number="1">(0010,0010)</Value>'
                "</DicomAttribute>"
            ),
            "00209165: Value 1 '(0010,0010)' is not a tag",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><Item number="1"/></DicomAttribute>'),
            "00100020: Item in an element of vr LO",
        ),
        (
            _doc('<DicomAttribute tag="00081115" vr="SQ"><Value number="1">x</Value></DicomAttribute>'),
            "00081115: Value in a sequence",
        ),
        (
            _doc(
                '<DicomAttribute tag="00081115" vr="SQ"><Item number="1"/><Item number="3"/></DicomAttribute>'
            ),
            "00081115: Items must be numbered 1 to 2",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><PersonName number="1"/></DicomAttribute>'),
            "00100020: PersonName in an element of vr LO",
        ),
        (
            _doc(
                '<DicomAttribute tag="00100010" vr="PN"><PersonName number="1"><Nickname/></PersonName>'
                "</DicomAttribute>"
            ),
            "00100010: unexpected <Nickname> in PersonName",
        ),
        (
            _doc(
                '<DicomAttribute tag="00100010" vr="PN"><PersonName number="1"><Alphabetic><Title/>'
                "</Alphabetic></PersonName></DicomAttribute>"
            ),
            "00100010: unexpected <Title> in Alphabetic",
        ),
        (
            _doc(
                '<DicomAttribute tag="00100020" vr="LO"><Value number="1">a</Value><BulkData uri="u"/>'
                "</DicomAttribute>"
            ),
            "00100020: mixes child elements BulkData, Value",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"><Foo/></DicomAttribute>'),
            "00100020: unexpected child element <Foo>",
        ),
        (
            _doc('<DicomAttribute tag="7FE00010" vr="OW"><BulkData uuid="1234"/></DicomAttribute>'),
            "7FE00010: BulkData without a uri (a uuid reference is not supported)",
        ),
        (
            _doc(
                '<DicomAttribute tag="0008041B" vr="OB"><InlineBinary>not base64!</InlineBinary>'
                "</DicomAttribute>"
            ),
            "0008041B: InlineBinary is not base64",
        ),
        (
            _doc('<DicomAttribute tag="00100020" vr="LO"/><DicomAttribute tag="00100020" vr="LO"/>'),
            "00100020: tag appears twice",
        ),
        (_doc(SEQUENCE_WITH_BAD_ITEM), "00081115/Item 1/00081199/Item 1/00081155: Value has number 'x'"),
    ],
)
def test_malformed_documents_raise_with_the_element_named(document, message):
    with pytest.raises(DicomXmlError) as raised:
        xml_to_json(document)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"0010": {"vr": "LO"}}, "bad tag '0010'"),
        ({"0010001G": {"vr": "LO"}}, "bad tag '0010001G'"),
        ({"00100020": {"Value": ["x"]}}, "00100020: missing vr"),
        ({"00100020": {"vr": "XX"}}, "00100020: unknown vr 'XX'"),
        ({"00100020": {"vr": "LO", "Value": "x"}}, "00100020: Value must be a JSON array"),
        ({"00081115": {"vr": "SQ", "Value": ["x"]}}, "00081115: item 1 is not a JSON object"),
        ({"00100010": {"vr": "PN", "Value": [5]}}, "00100010: PN value 1 must be a JSON object"),
        ({"00100020": ["x"]}, "00100020: expected a JSON object"),
    ],
)
def test_invalid_json_raises_with_the_element_named(dataset, message):
    with pytest.raises(DicomXmlError) as raised:
        json_to_xml(dataset)
    assert message in str(raised.value)


def test_error_is_a_value_error():
    assert issubclass(DicomXmlError, ValueError)
