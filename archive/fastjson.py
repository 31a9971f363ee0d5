"""Fast DICOM JSON encoding of raw (unconverted) data elements.

pydicom's ``Dataset.__getitem__`` + ``DataElement.to_json_dict`` costs ~50 µs per
element — 2.5 ms for a CT header, more than everything else in ingest together. Most
elements are plain strings or binary numbers in a simple character set, which encode
straight from the raw bytes. Anything else returns ``None`` and the caller falls back
to pydicom, so output is always what pydicom would produce
(``tests/archive/test_metadata.py`` checks equality over the whole test corpus).
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.valuerep import PersonName  # noqa: F401  (documents the PN shape we mirror)

# Character sets whose bytes decode with one Python codec and no escape sequences.
SIMPLE_CHARSETS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}

_ASCII_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "UI"}
_TEXT_VRS = {"LO", "SH", "UC"}  # charset-dependent, multi-valued
_SINGLE_TEXT_VRS = {"LT", "ST", "UT"}  # charset-dependent, single value, keep leading spaces
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


def _split(text: str) -> list[str]:
    return text.split("\\")


def _to_number(text: str, vr: str) -> int | float | None:
    text = text.strip(" \x00")
    if text == "":
        return None
    if vr == "IS":
        value = float(text) if "." in text or "e" in text.lower() else int(text)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(text)
            return int(value)
        return value
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return int(number) if number.is_integer() and "e" not in text.lower() and "." not in text else number


def encode_raw(raw: RawDataElement, vr: str, charset: str) -> dict[str, Any] | None:
    """JSON for one raw element, or None when pydicom must handle it."""
    value = raw.value
    if value is None:
        return None
    if not raw.is_little_endian and (vr in _NUMBER_FORMATS or vr == "AT"):
        return None
    if value == b"":
        return {"vr": vr}
    if vr in _ASCII_VRS:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        if vr == "UI":
            items = [item.strip("\x00 ") for item in _split(text.rstrip("\x00"))]
        else:
            items = [item.strip(" \x00") for item in _split(text)]
        return _values(vr, items)
    codec = SIMPLE_CHARSETS.get(charset)
    if codec is None:
        return None
    if vr in _TEXT_VRS:
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            return None
        if "\x1b" in text:
            return None
        return _values(vr, [item.strip(" \x00") for item in _split(text)])
    if vr in _SINGLE_TEXT_VRS:
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            return None
        if "\x1b" in text:
            return None
        text = text.rstrip(" \x00")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if vr == "PN":
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            return None
        if "\x1b" in text:
            return None
        names = []
        for item in _split(text.rstrip(" \x00")):
            item = item.rstrip(" \x00")
            if not item:
                names.append(None)
                continue
            groups = item.split("=")
            entry: dict[str, str] = {}
            for label, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
                if group:
                    entry[label] = group
            names.append(entry or None)
        return _pn_values(names)
    if vr in ("IS", "DS"):
        try:
            text = value.decode("ascii")
            numbers = [_to_number(item, vr) for item in _split(text)]
        except (UnicodeDecodeError, ValueError, OverflowError):
            return None
        return _values(vr, numbers)
    fmt = _NUMBER_FORMATS.get(vr)
    if fmt is not None:
        size = struct.calcsize("<" + fmt)
        if len(value) % size:
            return None
        numbers = list(struct.unpack(f"<{len(value) // size}{fmt}", value))
        if vr in ("FL", "FD") and any(n != n or n in (float("inf"), float("-inf")) for n in numbers):
            return None
        return {"vr": vr, "Value": numbers}
    return None


def _values(vr: str, items: list[Any]) -> dict[str, Any]:
    if all(item in ("", None) for item in items):
        return {"vr": vr}
    return {"vr": vr, "Value": [None if item == "" else item for item in items]}


def _pn_values(names: list[dict[str, str] | None]) -> dict[str, Any]:
    if all(name is None for name in names):
        return {"vr": "PN"}
    return {"vr": "PN", "Value": [name if name is not None else {} for name in names]}
