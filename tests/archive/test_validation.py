"""Tests for archive.validation: per-attribute VR warnings on STOW-RS ingest.

Every data set is written to bytes and read back exactly as the STOW-RS reader does
(``dcmread(fp, stop_before_pixels=True, defer_size=65536)`` with
``reading_validation_mode = IGNORE``), so the validator sees raw, unconverted and
deferred elements just like in production. Invalid values are written as raw bytes
(``RawDataElement``), because pydicom refuses to build some of them (e.g. IS 'abc').
"""

from __future__ import annotations

import collections
import os
import re
import warnings
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import config, dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import archive.validation as validation
from archive.validation import REQUIRED_TAGS, AttributeProblem, check_attributes
from tests.testdata import corpus_files

DEFER_SIZE = 65536
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture


@pytest.fixture(autouse=True)
def _ingest_validation_modes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The STOW-RS reader's global setting; writing IGNORE lets us build bad data."""
    monkeypatch.setattr(config.settings, "_reading_validation_mode", config.IGNORE)
    monkeypatch.setattr(config.settings, "_writing_validation_mode", config.IGNORE)
    monkeypatch.setattr(validation, "_VERDICTS", {})  # each test starts with no cached verdicts
    yield


# ----------------------------------------------------------------------------- helpers


def _tag(keyword_or_tag: str | int) -> int:
    if isinstance(keyword_or_tag, int):
        return keyword_or_tag
    tag = tag_for_keyword(keyword_or_tag)
    assert tag is not None, keyword_or_tag
    return tag


def raw(keyword_or_tag: str | int, vr: str, value: bytes) -> RawDataElement:
    """An element whose bytes are written verbatim (no pydicom validation/padding)."""
    return RawDataElement(Tag(_tag(keyword_or_tag)), vr, len(value), value, 0, False, True)


def base_dataset() -> Dataset:
    """A minimal, valid instance: check_attributes(base_dataset()) == []."""
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASS
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.PatientID = "PID-1"
    ds.Modality = "OT"
    return ds


def _keep_raw(ds: Dataset, *, implicit: bool) -> None:
    """Make pydicom write our raw elements verbatim.

    dcmwrite decodes and re-encodes raw elements (dropping NUL padding, fixing
    lengths) unless the data set's *original* encoding matches the output; so we
    declare it, for every nested item too.
    """
    ds.set_original_encoding(implicit, True, ds._character_set)
    for tag in sorted(ds.keys()):  # not `in ds`: that would convert raw elements
        elem = ds.get_item(tag)
        if isinstance(elem, DataElement) and elem.VR == "SQ":
            for item in elem.value:
                _keep_raw(item, implicit=implicit)


def roundtrip(ds: Dataset, *, transfer_syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """Write ``ds`` as a Part 10 stream and read it back as the STOW-RS reader does."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    _keep_raw(ds, implicit=transfer_syntax.is_implicit_VR)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer, stop_before_pixels=True, defer_size=DEFER_SIZE)


def problems_for(
    *elements: RawDataElement, transfer_syntax: UID = ExplicitVRLittleEndian
) -> list[AttributeProblem]:
    ds = base_dataset()
    for elem in elements:
        ds[elem.tag] = elem
    return check_attributes(roundtrip(ds, transfer_syntax=transfer_syntax))


def test_base_dataset_is_clean() -> None:
    assert check_attributes(roundtrip(base_dataset())) == []


# --------------------------------------------------------------- table: one VR per row

# (keyword, VR, valid value bytes) — each must produce no problem.
VALID = [
    ("RetrieveAETitle", "AE", b" ARCHWAY"),
    ("PatientAge", "AS", b"045Y"),
    ("DimensionIndexPointer", "AT", b"\x20\x00\x32\x00"),
    ("ImageType", "CS", b"ORIGINAL\\PRIMARY\\AXIAL"),
    ("StudyDate", "DA", b"20240229"),
    ("SliceThickness", "DS", b" -1.5e-3\\2"),
    ("AcquisitionDateTime", "DT", b"20210102030405.123456+0100"),
    ("AcquisitionDateTime", "DT", b"2021"),
    ("EventTimeOffset", "FD", b"\x00" * 8),
    ("ExaminedBodyThickness", "FL", b"\x00" * 4),
    ("InstanceNumber", "IS", b"-2147483648 "),
    ("InstitutionName", "LO", b"H\xf4pital\\Clinic  "),
    ("AdditionalPatientHistory", "LT", b"line 1\r\nline 2\tand a \\ backslash\x0c "),
    ("ICCProfile", "OB", b"\x00\x01\x02\x03"),
    ("DoublePointCoordinatesData", "OD", b"\x00" * 16),
    ("VectorGridData", "OF", b"\x00" * 8),
    ("LongPrimitivePointIndexList", "OL", b"\x00" * 8),
    ("SelectorOVValue", "OV", b"\x00" * 8),
    ("RedPaletteColorLookupTableData", "OW", b"\x00" * 6),
    ("PatientName", "PN", b"Doe^John^Q^Dr^Jr"),
    ("PatientName", "PN", b"Doe^John=Doe^John=Doe^John\\Roe"),
    ("AccessionNumber", "SH", b"ACC-0001"),
    ("ReferencePixelX0", "SL", b"\xff" * 4),
    ("TagAngleSecondAxis", "SS", b"\xff\xff"),
    ("InstitutionAddress", "ST", b"1 Main St\r\nTown "),
    ("SelectorSVValue", "SV", b"\x00" * 8),
    ("StudyTime", "TM", b"235960.123456 "),
    ("StudyTime", "TM", b"1012"),
    ("LongCodeValue", "UC", b"X" * 100),
    ("FrameOfReferenceUID", "UI", b"1.2.840.10008.5.1.4.1.1.2\x00"),
    ("SimpleFrameList", "UL", b"\x01\x00\x00\x00\x02\x00\x00\x00"),
    ("RetrieveURL", "UR", b"https://example.org/dicomweb/studies/1.2.3?x=1"),
    ("Rows", "US", b"\x00\x02"),
    ("TextValue", "UT", b"free text \\ with backslash\r\n"),
    ("SelectorUVValue", "UV", b"\x00" * 8),
]

# (keyword, VR, invalid value bytes, expected fragment of the message)
INVALID = [
    ("RetrieveAETitle", "AE", b"BAD\x01AE", "invalid AE value 'BAD\\x01AE'"),
    ("RetrieveAETitle", "AE", b"A" * 18, "value longer than 16 characters"),
    ("PatientAge", "AS", b"45Y ", "invalid AS value '45Y'"),
    ("DimensionIndexPointer", "AT", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("Modality", "CS", b"ct", "invalid CS value 'ct'"),
    ("Modality", "CS", b"ABCDEFGHIJKLMNOPQR", "value longer than 16 characters"),
    ("StudyDate", "DA", b"20210230", "invalid DA value '20210230' (not a calendar date)"),
    ("StudyDate", "DA", b"2021.01.02", "ACR-NEMA style DA value '2021.01.02' (expected YYYYMMDD)"),
    ("StudyDate", "DA", b"20210102-20210103", "invalid DA value"),  # ranges are for queries only
    ("SliceThickness", "DS", b"abc ", "invalid DS value 'abc' (expected a decimal number)"),
    ("SliceThickness", "DS", b"1\\2.5.3 ", "invalid DS value '2.5.3'"),
    ("SliceThickness", "DS", b"1.23456789012345678 ", "value longer than 16 characters"),
    ("SliceThickness", "DS", b"1e999 ", "DS value '1e999' is out of range"),
    ("AcquisitionDateTime", "DT", b"2021130203", "invalid DT value '2021130203'"),
    ("AcquisitionDateTime", "DT", b"20210231", "invalid DT value '20210231' (not a calendar date)"),
    ("EventTimeOffset", "FD", b"\x00" * 6, "value length 6 is not a multiple of 8"),
    ("ExaminedBodyThickness", "FL", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("InstanceNumber", "IS", b"1.5 ", "invalid IS value '1.5' (expected an integer)"),
    ("InstanceNumber", "IS", b"2147483648", "IS value '2147483648' is out of range"),
    ("InstitutionName", "LO", b"A" * 66, "value longer than 64 characters"),
    ("InstitutionName", "LO", b"bad\x01value ", "contains control character 0x01"),
    ("InstitutionName", "LO", b"line\r\nbreak ", "contains control character 0x0D"),
    ("AdditionalPatientHistory", "LT", b"A" * 10242, "value longer than 10240 characters"),
    ("AdditionalPatientHistory", "LT", b"bell\x07", "contains control character 0x07"),
    ("ICCProfile", "OB", b"\x00\x01\x02", "odd value length (3 bytes)"),
    ("DoublePointCoordinatesData", "OD", b"\x00" * 12, "value length 12 is not a multiple of 8"),
    ("VectorGridData", "OF", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("LongPrimitivePointIndexList", "OL", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("SelectorOVValue", "OV", b"\x00" * 12, "value length 12 is not a multiple of 8"),
    ("RedPaletteColorLookupTableData", "OW", b"\x00" * 3, "value length 3 is not a multiple of 2"),
    ("PatientName", "PN", b"A=B=C=D ", "has more than 3 component groups"),
    ("PatientName", "PN", b"A" * 66, "PN component group longer than 64 characters"),
    ("PatientName", "PN", b"A^B^C^D^E^F ", "has more than 5 components"),
    ("PatientName", "PN", b"Doe\tJohn", "contains control character 0x09"),
    ("AccessionNumber", "SH", b"A" * 18, "value longer than 16 characters"),
    ("ReferencePixelX0", "SL", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("TagAngleSecondAxis", "SS", b"\x00" * 3, "value length 3 is not a multiple of 2"),
    ("InstitutionAddress", "ST", b"A" * 1026, "value longer than 1024 characters"),
    ("InstitutionAddress", "ST", b"esc\x1b ok but \x02 not", "contains control character 0x02"),
    ("SelectorSVValue", "SV", b"\x00" * 12, "value length 12 is not a multiple of 8"),
    ("StudyTime", "TM", b"250000", "invalid TM value '250000'"),
    ("StudyTime", "TM", b"106000", "invalid TM value '106000'"),
    ("StudyTime", "TM", b"10:20:30", "ACR-NEMA style TM value '10:20:30'"),
    ("StudyTime", "TM", b"101112.1234567 ", "invalid TM value '101112.1234567'"),
    ("LongCodeValue", "UC", b"bad\x01 ", "contains control character 0x01"),
    ("FrameOfReferenceUID", "UI", b"1.2.abc\x00", "(contains characters other than digits and dots)"),
    ("FrameOfReferenceUID", "UI", b"1.2-3\x00", "(contains characters other than digits and dots)"),
    ("FrameOfReferenceUID", "UI", b"1.02.3", "(expected dot-separated numbers without leading zeros)"),
    ("FrameOfReferenceUID", "UI", b"1." + b"1" * 70, "value longer than 64 characters"),
    ("SimpleFrameList", "UL", b"\x00" * 6, "value length 6 is not a multiple of 4"),
    ("RetrieveURL", "UR", b"http://a b/ ", "invalid UR value 'http://a b/'"),
    ("Rows", "US", b"\x00" * 3, "value length 3 is not a multiple of 2"),
    ("TextValue", "UT", b"bad\x01text", "contains control character 0x01"),
    ("SelectorUVValue", "UV", b"\x00" * 12, "value length 12 is not a multiple of 8"),
    ("StudyDescription", "LO", b"odd", "odd value length (3 bytes)"),
]


def test_table_covers_every_vr() -> None:
    every_vr = {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
        "OV", "OW", "PN", "SH", "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV",
    }  # fmt: skip
    assert {row[1] for row in VALID} == every_vr
    assert {row[1] for row in INVALID} == every_vr
    for keyword, vr, *_ in VALID + INVALID:  # the rows use the dictionary VR of their tag
        assert dictionary_VR(_tag(keyword)) == vr, keyword


@pytest.mark.parametrize(("keyword", "vr", "value"), VALID, ids=[f"{r[1]}-{r[2][:20]!r}" for r in VALID])
def test_valid_value_has_no_problem(keyword: str, vr: str, value: bytes) -> None:
    assert problems_for(raw(keyword, vr, value)) == []


@pytest.mark.parametrize(
    ("keyword", "vr", "value", "fragment"), INVALID, ids=[f"{r[1]}-{r[2][:20]!r}" for r in INVALID]
)
def test_invalid_value_is_one_problem(keyword: str, vr: str, value: bytes, fragment: str) -> None:
    problems = problems_for(raw(keyword, vr, value))
    tag = _tag(keyword)
    assert [(p.tag, p.keyword) for p in problems] == [(tag, keyword)], problems
    message = problems[0].message
    assert message.startswith(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}: "), message
    assert fragment in message, message


def test_message_format_matches_the_documented_example() -> None:
    problems = problems_for(raw("PatientBirthDate", "DA", b"2021-13-45"))
    assert problems == [
        AttributeProblem(
            0x00100030,
            "PatientBirthDate",
            "(0010,0030) PatientBirthDate: invalid DA value '2021-13-45' (expected YYYYMMDD)",
        )
    ]


def test_valid_values_set_through_pydicom_are_clean() -> None:
    """The same checks on ordinary, pydicom-built values (the common case)."""
    ds = base_dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen=ミュラー^ユルゲン"
    ds.PatientBirthDate = "19700101"
    ds.StudyTime = "101010.5"
    ds.InstanceNumber = 7
    ds.PixelSpacing = [0.5, 0.5]
    ds.WindowCenter = "40.0"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows = 512
    ds.ReferencedFrameNumber = [1, 2, 3]
    assert check_attributes(roundtrip(ds)) == []


def test_elements_already_converted_by_the_caller_are_checked_the_same_way() -> None:
    """The caller may have read some attributes (which converts them) before validating."""
    ds = _with(
        raw("SpecificCharacterSet", "CS", b"ISO_IR 100"),
        raw("PatientName", "PN", b"M\xfcller^J\xfcrgen "),
        raw("InstanceNumber", "IS", b"1.5 "),
        raw("StudyDate", "DA", b"2021-13-45"),
        raw("Modality", "CS", b"ct"),
        raw("PixelSpacing", "DS", b"0.5\\abc "),
        raw("FrameOfReferenceUID", "UI", b"1.2.3\x00"),
    )
    read = roundtrip(ds)
    for keyword in ("SpecificCharacterSet", "PatientName", "InstanceNumber", "StudyDate", "Modality"):
        _ = read[keyword].value  # converts and stores a DataElement
    _ = read["PixelSpacing"].value
    _ = read["FrameOfReferenceUID"].value
    assert not isinstance(read.get_item(_tag("InstanceNumber")), RawDataElement)
    problems = {p.keyword: p.message for p in check_attributes(read)}
    assert sorted(problems) == ["InstanceNumber", "Modality", "PixelSpacing", "StudyDate"]
    assert "invalid IS value '1.5'" in problems["InstanceNumber"]
    assert "invalid DA value '2021-13-45'" in problems["StudyDate"]
    assert "invalid CS value 'ct'" in problems["Modality"]
    assert "invalid DS value 'abc'" in problems["PixelSpacing"]


# ------------------------------------------------------------------ padding, emptiness


NULL_PADDED = [
    ("RetrieveAETitle", "AE", b"AE1\x00"),
    ("PatientAge", "AS", b"045Y\x00\x00"),
    ("Modality", "CS", b"CT\x00\x00"),
    ("StudyDate", "DA", b"20210102\x00\x00"),
    ("SliceThickness", "DS", b"1.5\x00"),
    ("AcquisitionDateTime", "DT", b"2021\x00\x00"),
    ("InstanceNumber", "IS", b"1\x00"),
    ("InstitutionName", "LO", b"ABC\x00"),
    ("AdditionalPatientHistory", "LT", b"text\x00\x00"),
    ("PatientName", "PN", b"Doe^J\x00"),
    ("AccessionNumber", "SH", b"A1\x00\x00"),
    ("InstitutionAddress", "ST", b"st\x00\x00"),
    ("StudyTime", "TM", b"1010\x00\x00"),
    ("LongCodeValue", "UC", b"UC\x00\x00"),
    ("FrameOfReferenceUID", "UI", b"1.2.3\x00"),
    ("RetrieveURL", "UR", b"http://a/\x00"),
    ("TextValue", "UT", b"text\x00\x00"),
    ("ImageType", "CS", b"ORIGINAL\x00\\PRIMARY\x00"),
]


@pytest.mark.parametrize(("keyword", "vr", "value"), NULL_PADDED, ids=[r[1] for r in NULL_PADDED])
def test_trailing_null_padding_is_not_a_problem(keyword: str, vr: str, value: bytes) -> None:
    assert problems_for(raw(keyword, vr, value)) == []


def test_empty_values_are_fine() -> None:
    elements = [raw(keyword, vr, b"") for keyword, vr, _ in VALID]
    assert problems_for(*elements) == []


# ------------------------------------------------------------------------- sequences


def _request_attributes(bad_item: Dataset, *, undefined_length: bool) -> Dataset:
    ok = Dataset()
    ok.RequestedProcedureID = "RP1"
    ok.StudyInstanceUID = "1.2.3"
    ds = base_dataset()
    ds.RequestAttributesSequence = Sequence([ok, bad_item])
    ds["RequestAttributesSequence"].is_undefined_length = undefined_length
    return ds


@pytest.mark.parametrize("undefined_length", [False, True], ids=["defined-length", "undefined-length"])
def test_sequence_problem_reported_once_under_top_level_tag(undefined_length: bool) -> None:
    bad = Dataset()
    bad["RequestedProcedureID"] = raw("RequestedProcedureID", "SH", b"A" * 18)
    bad["ReasonForTheRequestedProcedure"] = raw("ReasonForTheRequestedProcedure", "LO", b"bad\x01")  # 2nd
    ds = roundtrip(_request_attributes(bad, undefined_length=undefined_length))
    assert check_attributes(ds) == [
        AttributeProblem(
            0x00400275,
            "RequestAttributesSequence",
            "(0040,0275) RequestAttributesSequence: item 2 (0040,1001) RequestedProcedureID: "
            "value longer than 16 characters",
        )
    ]


@pytest.mark.parametrize("undefined_length", [False, True], ids=["defined-length", "undefined-length"])
def test_nested_sequence_problem_names_every_level(undefined_length: bool) -> None:
    code = Dataset()
    code["CodeValue"] = raw("CodeValue", "SH", b"X" * 18)
    bad = Dataset()
    bad.ScheduledProtocolCodeSequence = Sequence([code])
    bad["ScheduledProtocolCodeSequence"].is_undefined_length = undefined_length
    ds = roundtrip(_request_attributes(bad, undefined_length=undefined_length))
    (problem,) = check_attributes(ds)
    assert problem.tag == 0x00400275
    assert problem.message == (
        "(0040,0275) RequestAttributesSequence: item 2 (0040,0008) ScheduledProtocolCodeSequence: "
        "item 1 (0008,0100) CodeValue: value longer than 16 characters"
    )


def test_required_tags_inside_sequences_are_validated() -> None:
    """skip_tags covers the top level only; nested UIDs are ordinary attributes."""
    bad = Dataset()
    bad["StudyInstanceUID"] = raw("StudyInstanceUID", "UI", b"1.2.x\x00")
    (problem,) = check_attributes(roundtrip(_request_attributes(bad, undefined_length=False)))
    assert "item 2 (0020,000D) StudyInstanceUID: invalid UI value '1.2.x'" in problem.message


def test_sequence_items_inherit_and_override_the_character_set() -> None:
    item = Dataset()
    item["SpecificCharacterSet"] = raw("SpecificCharacterSet", "CS", b"ISO_IR 100")
    item["PatientName"] = raw("PatientName", "PN", b"M\xfcller")  # latin-1: fine here
    ds = base_dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.OtherPatientIDsSequence = Sequence([item])
    assert check_attributes(roundtrip(ds)) == []
    # ... while the same bytes at the top level are invalid UTF-8
    ds["PatientName"] = raw("PatientName", "PN", b"M\xfcller")
    (problem,) = check_attributes(roundtrip(ds))
    assert problem.keyword == "PatientName"
    assert "cannot be decoded with character set 'UTF8'" in problem.message


# ----------------------------------------------------------------------- required tags


def test_required_tags_are_skipped_by_default() -> None:
    ds = base_dataset()
    ds["SOPInstanceUID"] = raw("SOPInstanceUID", "UI", b"abc\x00")
    ds["PatientID"] = raw("PatientID", "LO", b"bad\x01id")
    read = roundtrip(ds)
    assert check_attributes(read) == []
    assert {p.keyword for p in check_attributes(read, skip_tags=())} == {"SOPInstanceUID", "PatientID"}
    assert {0x0020000D, 0x0020000E, 0x00080018, 0x00080016, 0x00100020} == REQUIRED_TAGS


# ---------------------------------------------------------------- deferred (> 64 KiB)


def test_deferred_value_over_the_limit_is_reported_without_reading_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = base_dataset()
    ds["AdditionalPatientHistory"] = raw("AdditionalPatientHistory", "LT", b"A" * 70000)
    ds["TextValue"] = raw("TextValue", "UT", b"B" * 70000)  # UT: no limit
    ds["RedPaletteColorLookupTableData"] = raw("RedPaletteColorLookupTableData", "OW", b"\x00" * 70000)
    # LT has a 16-bit length in explicit VR, so only implicit VR can carry this value.
    read = roundtrip(ds, transfer_syntax=ImplicitVRLittleEndian)
    lt_tag = _tag("AdditionalPatientHistory")
    assert read.get_item(lt_tag, keep_deferred=True).value is None  # really deferred

    def no_deferred_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("check_attributes read a deferred value")

    monkeypatch.setattr("pydicom.filereader.read_deferred_data_element", no_deferred_reads)
    assert check_attributes(read) == [
        AttributeProblem(
            lt_tag,
            "AdditionalPatientHistory",
            "(0010,21B0) AdditionalPatientHistory: value length 70000 bytes exceeds the LT maximum "
            "of 10240 characters",
        )
    ]
    for tag in (lt_tag, _tag("TextValue"), _tag("RedPaletteColorLookupTableData")):
        assert read.get_item(tag, keep_deferred=True).value is None


def test_deferred_binary_value_with_wrong_length_is_reported() -> None:
    problems = problems_for(raw("VectorGridData", "OF", b"\x00" * 70002))
    assert [p.message for p in problems] == [
        "(0064,0009) VectorGridData: value length 70002 is not a multiple of 4 as required for OF"
    ]


# ------------------------------------------------------- conversion errors, robustness


@pytest.mark.parametrize(
    ("keyword", "vr", "value"),
    [
        ("InstanceNumber", "IS", b"abc "),
        ("InstanceNumber", "IS", b"1.5 "),
        ("InstanceNumber", "IS", b"12345678901234"),
        ("SliceThickness", "DS", b"1,5 "),
        ("SliceThickness", "DS", b"nan "),
    ],
)
def test_values_pydicom_cannot_convert_are_problems_not_exceptions(
    keyword: str, vr: str, value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = roundtrip(_with(raw(keyword, vr, value)))
    (problem,) = check_attributes(read)
    assert problem.keyword == keyword
    # These are the values on which pydicom raises as soon as validation is on ...
    monkeypatch.setattr(config.settings, "_reading_validation_mode", config.RAISE)
    with pytest.raises((ValueError, TypeError, OverflowError)):
        _ = read[keyword].value
    # ... and the validator still reports instead of raising, whatever the mode.
    read = roundtrip(_with(raw(keyword, vr, value)))
    assert [p.keyword for p in check_attributes(read)] == [keyword]


def _with(*elements: RawDataElement) -> Dataset:
    ds = base_dataset()
    for elem in elements:
        ds[elem.tag] = elem
    return ds


def test_repeated_values_get_the_same_verdict_from_the_cache() -> None:
    bad = _with(raw("StudyDate", "DA", b"2021-13-45"), raw("Modality", "CS", b"CT"))
    first = check_attributes(roundtrip(bad))
    assert validation._VERDICTS, "short values are cached"
    assert check_attributes(roundtrip(bad)) == first
    assert [p.keyword for p in first] == ["StudyDate"]
    # A different value of the same attribute gets its own verdict.
    assert check_attributes(roundtrip(_with(raw("StudyDate", "DA", b"20211231")))) == []


def test_conversion_exception_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    read = roundtrip(_with(raw("InstanceNumber", "IS", b"7 ")))

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(validation, "convert_raw_data_element", broken)
    problems = {p.keyword: p.message for p in check_attributes(read)}
    assert (
        problems["InstanceNumber"]
        == "(0020,0013) InstanceNumber: value cannot be converted as IS (ValueError: boom)"
    )


def test_unparseable_sequence_is_reported() -> None:
    (problem,) = problems_for(raw("RequestAttributesSequence", "SQ", b"\x08\x00\x10\x00"))
    assert problem.tag == 0x00400275
    assert problem.message.startswith("(0040,0275) RequestAttributesSequence: sequence cannot be parsed (")


def test_truncated_value_inside_an_item_is_reported() -> None:
    """An item whose element claims 32 bytes but holds none: pydicom reads it anyway."""
    item = b"\xfe\xff\x00\xe0\x08\x00\x00\x00" + b"\x10\x00\x10\x00PN\x20\x00"
    (problem,) = problems_for(raw("RequestAttributesSequence", "SQ", item))
    assert problem.message == (
        "(0040,0275) RequestAttributesSequence: item 1 (0010,0010) PatientName: "
        "value truncated (0 of 32 bytes present)"
    )


def test_first_problem_only_and_tag_order() -> None:
    problems = problems_for(
        raw("StudyDescription", "LO", b"x\x01" + b"A" * 80),  # two issues, one report
        raw("StudyDate", "DA", b"yesterday "),
        raw("Rows", "US", b"\x00\x00\x00"),
    )
    assert [p.tag for p in problems] == sorted(p.tag for p in problems)
    assert [p.keyword for p in problems] == ["StudyDate", "StudyDescription", "Rows"]
    assert "control character" in problems[1].message


# ------------------------------------------------- private, UN, implicit VR, charsets


def test_private_elements_are_checked_by_explicit_vr_only() -> None:
    creator = raw(0x00090010, "LO", b"ARCHWAY TEST")
    bad_private_date = raw(0x00091001, "DA", b"notadate")
    garbage_un = raw(0x00091002, "UN", b"\x01\x02\x03")
    problems = problems_for(creator, bad_private_date, garbage_un)
    assert [(p.tag, p.keyword) for p in problems] == [(0x00091001, "")]
    assert problems[0].message.startswith("(0009,1001): invalid DA value 'notadate'")


def test_implicit_vr_uses_the_dictionary_and_skips_private_elements() -> None:
    problems = problems_for(
        raw("InstanceNumber", "IS", b"one "),
        raw(0x00090010, "LO", b"ARCHWAY TEST"),
        raw(0x00091001, "DA", b"\x01\x02\x03\x04"),  # VR unknown once written implicitly
        transfer_syntax=ImplicitVRLittleEndian,
    )
    assert [p.keyword for p in problems] == ["InstanceNumber"]
    assert "invalid IS value 'one'" in problems[0].message


def test_explicit_un_is_skipped() -> None:
    assert problems_for(raw("InstanceNumber", "UN", b"not an IS at all")) == []


@pytest.mark.filterwarnings("ignore:Unknown encoding")  # pydicom's reader says so too
def test_unknown_specific_character_set_is_reported() -> None:
    problems = problems_for(raw("SpecificCharacterSet", "CS", b"ISO_IR 999"))
    assert [p.message for p in problems] == [
        "(0008,0005) SpecificCharacterSet: unknown Specific Character Set term 'ISO_IR 999'"
    ]


def test_iso_2022_code_extensions_decode_cleanly() -> None:
    ds = base_dataset()
    ds["SpecificCharacterSet"] = raw("SpecificCharacterSet", "CS", b"\\ISO 2022 IR 87")
    # PS3.5 H.3.1 example: Yamada^Tarou=山田^太郎=やまだ^たろう
    ds["PatientName"] = raw(
        "PatientName",
        "PN",
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
    )
    assert check_attributes(roundtrip(ds)) == []


def test_undeclared_escape_sequence_is_reported() -> None:
    ds = base_dataset()
    ds["SpecificCharacterSet"] = raw("SpecificCharacterSet", "CS", b"\\ISO 2022 IR 87")
    ds["PatientName"] = raw("PatientName", "PN", b"Yamada^\x1b$)CXX\x1b(B")  # KS X 1001: not declared
    (problem,) = check_attributes(roundtrip(ds))
    assert problem.message == "(0010,0010) PatientName: unknown or undeclared escape sequence b'\\x1b$)C'"


# ------------------------------------------------------------- corpus (never raises)


def _corpus_files() -> list[Path]:
    """The offline corpus (never the network: see tests/testdata.py)."""
    return list(corpus_files())


def test_corpus_never_raises() -> None:
    readable = 0
    failures: list[str] = []
    warned: list[tuple[str, list[AttributeProblem]]] = []
    for path in _corpus_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's own complaints about odd files
            try:
                with path.open("rb") as fp:
                    ds = dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE)
            except Exception:
                continue  # not something pydicom reads without force: not our concern
            readable += 1
            try:
                problems = check_attributes(ds)
            except Exception as exc:
                failures.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
        if problems:
            warned.append((path.name, problems))

    by_reason = collections.Counter(
        re.sub(r"'[^']*'", "'…'", p.message.split(": ", 1)[1]) for _, problems in warned for p in problems
    )
    print(f"\nvalidation corpus: {readable} readable files, {len(warned)} with warnings")
    for name, problems in warned:
        for problem in problems:
            print(f"  {name}: {problem.message}")
    print("  most common reasons:")
    for reason, count in by_reason.most_common(15):
        print(f"  {count:4d}  {reason}")

    assert readable > 200, "the pydicom test corpus was not found"
    assert not failures, "check_attributes raised:\n" + "\n".join(failures)


def test_corpus_files_exist() -> None:
    assert any(os.path.basename(p) == "CT_small.dcm" for p in map(str, _corpus_files()))
