"""DICOM XML (PS3.19 Annex A.1, the Native DICOM Model) to and from Archway's DICOM JSON.

DICOMweb lets a client ask for metadata and search results as ``application/dicom+xml``
instead of JSON, and STOW-RS accepts XML metadata. Archway's internal model of a data set is
its DICOM JSON (PS3.18 Annex F, produced by :func:`archive.metadata.dataset_to_json`), so
XML is only ever a *rendering* of that JSON: this module converts one into the other and
knows nothing about Django, storage or pydicom data sets (it only reads pydicom's data
dictionary, for keywords).

Encoding (:func:`json_to_xml`) is on the hot path — a series' metadata is thousands of
documents — so it builds the text by appending to a list and joining once, with
``str.replace``-based escaping, instead of building an ElementTree (which costs several
times more per element). Decoding (:func:`xml_to_json`) is for uploads, where clarity and
strict validation matter more than speed, so it uses :mod:`xml.etree.ElementTree`.

Choices the standard leaves open, or where the two models differ:

* **Characters XML 1.0 cannot carry.** C0 controls other than TAB, LF and CR, lone
  surrogates and U+FFFE/U+FFFF cannot appear in an XML 1.0 document at all, not even as
  character references. Each is replaced by U+FFFD (REPLACEMENT CHARACTER), so output is
  always well-formed; that is the one lossy step. CR is written as ``&#13;`` (a parser would
  otherwise turn CR LF into LF), and TAB/LF/CR in attribute values as character references
  (attribute-value normalisation would otherwise turn them into spaces).
* **Private data elements.** PS3.19 A.1.5 says a private element's ``tag`` carries ``00`` in
  place of the block number (``gggg00ee``) and ``privateCreator`` names the block's owner.
  The encoder does that whenever the block's Private Creator element is in the same data set;
  an orphan private element (no creator) keeps its full tag and gets no ``privateCreator``,
  since nothing else would say where it belongs. The decoder maps ``gggg00ee`` +
  ``privateCreator`` back to the block whose creator element has that value (allocating a
  free block, and adding its creator element, if none has), and accepts a full ``ggggxxee``
  tag as is, because some writers send that.
* **Empty versus null values.** ``<Value number="2"/>`` is PS3.19's zero-length value; JSON
  says ``null``. An empty JSON string encodes the same way, so it decodes to ``None``. A
  null Person Name (``null`` or ``{}`` in JSON) is an empty ``<PersonName number="n"/>`` and
  decodes to ``{}``, which is what :mod:`archive.fastjson` produces.
* **Person Name components.** A group is split on ``^`` into at most five components; every
  component present in the string is written, empty ones as empty elements, so trailing
  ``^`` survive the round trip, and a sixth-or-later component stays inside ``NameSuffix``
  (``"A^B^C^D^E^F"`` gives NameSuffix ``E^F``) rather than being dropped.
* **Group length** elements (gggg,0000) are left out, as PS3.19 A.1.1 requires, in both
  directions.
* The root carries ``xml:space="preserve"``, which PS3.19 A.1.5 requires, and no whitespace
  is added between elements.
"""

from __future__ import annotations

import binascii
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag

__all__ = [
    "NAMESPACE",
    "DicomXmlError",
    "datasets_to_xml_parts",
    "json_to_xml",
    "xml_to_json",
]

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_ROOT_OPEN = f'<NativeDicomModel xmlns="{NAMESPACE}" xml:space="preserve">'
_ROOT_CLOSE = "</NativeDicomModel>"

# Every VR of PS3.5 (2024), which is also PS3.19's schema's list.
VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV"}
    | {"OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}
)
_BINARY_INT_VRS = frozenset({"US", "SS", "UL", "SL", "SV", "UV"})
_BINARY_FLOAT_VRS = frozenset({"FL", "FD"})

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")

# Code points XML 1.0 forbids outright (section 2.2 "Char"); see the module docstring.
_ILLEGAL_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ILLEGAL_C0_BYTES = bytes(byte for byte in range(0x20) if byte not in (0x09, 0x0A, 0x0D))
_ODD_HEX_DIGITS = frozenset("13579BDFbdf")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ENCODING_DECL = re.compile(r"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_ACCEPTED_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


class DicomXmlError(ValueError):
    """A data set cannot be converted: malformed or unsafe XML, or an invalid element."""


# --------------------------------------------------------------------------- encoding


def _escape_text(text: str) -> str:
    """Escape character data. ``in`` tests first: most DICOM values need no escaping at all."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _escape_attribute(text: str) -> str:
    """Escape a double-quoted attribute value, keeping TAB/LF/CR from being normalised away."""
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\t" in text:
        text = text.replace("\t", "&#9;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    return text


# (JSON key, vr) -> the opening ``<DicomAttribute ...`` (without the closing ``>``) of a
# public or creator-less tag. Bounded so arbitrary keys from odd data cannot grow it forever.
_OPEN_CACHE: dict[tuple[str, str], str] = {}
_OPEN_CACHE_LIMIT = 20_000


def _tag_of(key: str) -> int:
    if type(key) is not str or not _HEX8.fullmatch(key):
        raise DicomXmlError(f"bad tag {key!r}: expected 8 hexadecimal digits")
    return int(key, 16)


def _open_public(key: str, vr: str) -> str:
    """``<DicomAttribute tag=.. vr=.. keyword=..`` for a tag written as is (cached)."""
    opening = _OPEN_CACHE.get((key, vr))
    if opening is None:
        tag = _tag_of(key)
        if vr not in VRS:
            raise DicomXmlError(f"DicomAttribute {key.upper()}: unknown vr {vr!r}")
        keyword = "" if (tag >> 16) & 1 else keyword_for_tag(tag)
        opening = f'<DicomAttribute tag="{tag:08X}" vr="{vr}"'
        if keyword:
            opening += f' keyword="{keyword}"'
        if len(_OPEN_CACHE) >= _OPEN_CACHE_LIMIT:
            _OPEN_CACHE.clear()
        _OPEN_CACHE[(key, vr)] = opening
    return opening


def _creator_of(dataset: dict[str, Any], creator_key: str) -> str | None:
    """The value of Private Creator (gggg,00xx) in ``dataset``, if it is there and non-empty."""
    element = dataset.get(creator_key)
    if element is None:
        element = dataset.get(creator_key.upper())
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    if not values or not isinstance(values[0], str) or not values[0]:
        return None
    return values[0]


# (JSON key, vr, creator) -> the opening of a private data element written as gggg00ee.
_PRIVATE_CACHE: dict[tuple[str, str, str], str] = {}


def _open_private(key: str, vr: str, creator: str) -> str:
    """``<DicomAttribute tag="gggg00ee" vr=.. privateCreator=..`` (PS3.19 A.1.5; cached)."""
    opening = _PRIVATE_CACHE.get((key, vr, creator))
    if opening is None:
        tag = _tag_of(key)
        if vr not in VRS:
            raise DicomXmlError(f"DicomAttribute {key.upper()}: unknown vr {vr!r}")
        opening = (
            f'<DicomAttribute tag="{tag >> 16:04X}00{tag & 0xFF:02X}" vr="{vr}" '
            f'privateCreator="{_escape_attribute(creator)}"'
        )
        if len(_PRIVATE_CACHE) >= _OPEN_CACHE_LIMIT:
            _PRIVATE_CACHE.clear()
        _PRIVATE_CACHE[(key, vr, creator)] = opening
    return opening


def _sorted_keys(dataset: dict[str, Any]) -> list[str]:
    # Upper-case hex sorts like the number it spells; tolerate lower-case keys from elsewhere.
    try:
        return sorted(dataset, key=str.upper)
    except TypeError:
        raise DicomXmlError("a data set key is not a string tag") from None


def _encode_dataset(dataset: dict[str, Any], out: list[str]) -> None:
    append = out.append
    creators: dict[str, str | None] = {}  # creator key (gggg00xx) -> its value, for this data set
    for key in _sorted_keys(dataset):
        element = dataset[key]
        if not isinstance(element, dict):
            raise DicomXmlError(f"DicomAttribute {key}: expected a JSON object, got {type(element).__name__}")
        vr = element.get("vr")
        if type(vr) is not str:
            if not isinstance(vr, str):
                raise DicomXmlError(f"DicomAttribute {key}: missing vr")
            vr = vr[:]  # pydicom's VR enum (a str subclass) as a plain str
        if len(key) != 8:
            _tag_of(key)  # raises: not a tag
        if key[4:] == "0000":
            continue  # group length: PS3.19 A.1.1 excludes it
        if key[3] in _ODD_HEX_DIGITS and key[4] != "0":
            # A private data element (gggg,xxee), block xx >= 0x10: name the block's creator.
            creator_key = f"{key[:4]}00{key[4:6]}"
            if creator_key in creators:
                creator = creators[creator_key]
            else:
                creator = creators[creator_key] = _creator_of(dataset, creator_key)
            opening = _open_public(key, vr) if creator is None else _open_private(key, vr, creator)
        else:
            opening = _open_public(key, vr)

        values = element.get("Value")
        if not values:
            if "BulkDataURI" in element:
                uri = _escape_attribute(str(element["BulkDataURI"]))
                append(f'{opening}><BulkData uri="{uri}"/></DicomAttribute>')
            elif "InlineBinary" in element:
                encoded = _escape_text(str(element["InlineBinary"]))
                append(f"{opening}><InlineBinary>{encoded}</InlineBinary></DicomAttribute>")
            else:
                append(opening + "/>")
            continue
        if type(values) is not list and not isinstance(values, list | tuple):
            raise DicomXmlError(f"DicomAttribute {key}: Value must be a JSON array")
        if len(values) == 1 and type(values[0]) is str and values[0] and vr != "PN" and vr != "SQ":
            # The commonest case by far (one string value): one append, no loop.
            append(f'{opening}><Value number="1">{_escape_text(values[0])}</Value></DicomAttribute>')
            continue
        append(opening + ">")
        if vr == "SQ":
            for number, item in enumerate(values, 1):
                if not item:
                    append(f'<Item number="{number}"/>')
                    continue
                if not isinstance(item, dict):
                    raise DicomXmlError(f"DicomAttribute {key}: item {number} is not a JSON object")
                append(f'<Item number="{number}">')
                _encode_dataset(item, out)
                append("</Item>")
        elif vr == "PN":
            for number, name in enumerate(values, 1):
                _encode_person_name(key, number, name, out)
        else:
            for number, value in enumerate(values, 1):
                kind = type(value)
                if kind is str:
                    append(
                        f'<Value number="{number}">{_escape_text(value)}</Value>'
                        if value
                        else f'<Value number="{number}"/>'
                    )
                elif value is None:
                    append(f'<Value number="{number}"/>')
                elif kind is int:
                    append(f'<Value number="{number}">{value}</Value>')
                elif kind is float:
                    append(f'<Value number="{number}">{value!r}</Value>')
                elif isinstance(value, dict | list | tuple):
                    raise DicomXmlError(f"DicomAttribute {key}: value {number} of a {vr} is a JSON container")
                else:  # int/float subclasses (bool, numpy scalars) and anything else printable
                    append(f'<Value number="{number}">{_escape_text(str(value))}</Value>')
        append("</DicomAttribute>")


def _encode_person_name(key: str, number: int, name: Any, out: list[str]) -> None:
    if isinstance(name, str):  # not Archway's shape, but a plain PN string is unambiguous
        name = {group: text for group, text in zip(PN_GROUPS, name.split("="), strict=False) if text}
    if not name:
        out.append(f'<PersonName number="{number}"/>')
        return
    if not isinstance(name, dict):
        raise DicomXmlError(f"DicomAttribute {key}: PN value {number} must be a JSON object")
    out.append(f'<PersonName number="{number}">')
    for group in PN_GROUPS:
        text = name.get(group)
        if text is None:
            continue
        if not isinstance(text, str):
            raise DicomXmlError(f"DicomAttribute {key}: PN value {number} {group} must be a string")
        if not text:
            out.append(f"<{group}/>")
            continue
        out.append(f"<{group}>")
        for component, part in zip(PN_COMPONENTS, text.split("^", 4), strict=False):
            out.append(f"<{component}>{_escape_text(part)}</{component}>" if part else f"<{component}/>")
        out.append(f"</{group}>")
    out.append("</PersonName>")


def json_to_xml(dataset: dict[str, Any]) -> bytes:
    """One DICOM JSON data set as a UTF-8 ``NativeDicomModel`` document (always well-formed XML)."""
    out = [_DECLARATION, _ROOT_OPEN]
    _encode_dataset(dataset, out)
    out.append(_ROOT_CLOSE)
    return _well_formed_utf8("".join(out))


def _well_formed_utf8(text: str) -> bytes:
    """``text`` as UTF-8 with every character XML 1.0 forbids replaced by U+FFFD.

    The markup never contains such characters, so one pass over the whole document
    replaces exactly the offending characters of values. The common case (nothing to
    replace) is checked on the encoded bytes, several times faster than a regex scan.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return _ILLEGAL_XML_CHARS.sub("\ufffd", text).encode("utf-8")
    if len(data.translate(None, _ILLEGAL_C0_BYTES)) != len(data) or (
        not text.isascii() and ("\ufffe" in text or "\uffff" in text)
    ):
        return _ILLEGAL_XML_CHARS.sub("\ufffd", text).encode("utf-8")
    return data


def datasets_to_xml_parts(datasets: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One XML document per data set, lazily.

    PS3.18 returns XML metadata and search results as ``multipart/related;
    type="application/dicom+xml"`` with one data set per part (XML has no array of
    documents), so the caller wraps each of these in a part as it streams.
    """
    for dataset in datasets:
        yield json_to_xml(dataset)


# --------------------------------------------------------------------------- decoding


class _Names:
    """Qualified element names (``{namespace}Local``) for one document's namespace."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.attribute = prefix + "DicomAttribute"
        self.value = prefix + "Value"
        self.person_name = prefix + "PersonName"
        self.item = prefix + "Item"
        self.bulk_data = prefix + "BulkData"
        self.inline_binary = prefix + "InlineBinary"
        self.groups = {prefix + group: group for group in PN_GROUPS}
        self.components = {prefix + component: index for index, component in enumerate(PN_COMPONENTS)}


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _check_document(data: bytes) -> None:
    """Refuse what ElementTree must not be handed: non-UTF-8 text, DTDs and entity declarations.

    Python's expat does not fetch external entities, but it does expand internal ones
    (the "billion laughs" attack), and a DICOM document never needs a DTD, so any
    ``<!DOCTYPE``/``<!ENTITY`` is refused outright. The check is on the decoded text, and
    only UTF-8 (or its ASCII subset) is accepted, so no other encoding can hide the markup
    from it; DICOMweb's XML is UTF-8 anyway.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DicomXmlError(f"the XML document is not UTF-8: {exc}") from exc
    declared = _ENCODING_DECL.match(text.lstrip()[:256]) if text.lstrip().startswith("<?xml") else None
    if declared and declared.group(1).lower() not in _ACCEPTED_ENCODINGS:
        raise DicomXmlError(
            f"the XML document declares encoding {declared.group(1)!r}; only UTF-8 is accepted"
        )
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DicomXmlError("DTDs and entity declarations (<!DOCTYPE, <!ENTITY) are refused")


def xml_to_json(data: bytes) -> dict[str, Any]:
    """Parse one ``NativeDicomModel`` document into DICOM JSON; :class:`DicomXmlError` if invalid.

    Values of the numeric VRs become JSON numbers (IS/DS that are not valid numbers stay
    strings, as :mod:`archive.metadata` keeps them); AT values are ``GGGGEEEE``; everything
    else is a string. ``keyword`` attributes are ignored (the tag is authoritative).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    _check_document(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DicomXmlError(f"not well-formed XML: {exc}") from exc
    if root.tag == f"{{{NAMESPACE}}}NativeDicomModel":
        names = _Names(f"{{{NAMESPACE}}}")
    elif root.tag == "NativeDicomModel":  # tolerated: some writers forget the namespace
        names = _Names("")
    else:
        raise DicomXmlError(
            f"unknown root element {root.tag!r}: expected NativeDicomModel in namespace {NAMESPACE}"
        )
    return _parse_dataset(root, names, "")


def _parse_dataset(parent: ET.Element, names: _Names, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    private: list[tuple[int, str, dict[str, Any], str]] = []
    for child in parent:
        if child.tag != names.attribute:
            where = f" in {path.rstrip('/')}" if path else ""
            raise DicomXmlError(f"unexpected element <{_local(child.tag)}>{where}: expected DicomAttribute")
        tag_text = child.get("tag")
        if tag_text is None:
            where = f" in {path.rstrip('/')}" if path else ""
            raise DicomXmlError(f"DicomAttribute without a tag attribute{where}")
        if not _HEX8.fullmatch(tag_text):
            raise DicomXmlError(
                f"DicomAttribute {path}{tag_text!r}: bad tag format, expected 8 hexadecimal digits"
            )
        tag = int(tag_text, 16)
        key = f"{tag:08X}"
        where = path + key
        creator = child.get("privateCreator")
        in_block = creator is not None and (tag >> 16) & 1 and tag & 0xFF00 == 0  # gggg00ee, see below
        if tag & 0xFFFF == 0 and not in_block:
            continue  # group length: PS3.19 A.1.1 excludes it
        vr = child.get("vr")
        if vr is None:
            vr = _dictionary_vr(tag, where)
        elif vr not in VRS:
            raise DicomXmlError(f"DicomAttribute {where}: unknown vr {vr!r}")
        element = _parse_attribute(child, vr, names, where)
        if in_block:
            private.append((tag, creator, element, where))
            continue
        if key in out:
            raise DicomXmlError(f"DicomAttribute {where}: tag appears twice")
        out[key] = element
    if private:
        _place_private(out, private)
        out = dict(sorted(out.items()))
    return out


def _dictionary_vr(tag: int, where: str) -> str:
    """PS3.19 makes ``vr`` optional: take it from the data dictionary when that is unambiguous."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = ""
    if vr not in VRS:
        raise DicomXmlError(f"DicomAttribute {where}: missing vr (and the dictionary does not give one)")
    return vr


def _place_private(out: dict[str, Any], private: list[tuple[int, str, dict[str, Any], str]]) -> None:
    """Give each ``gggg00ee`` + privateCreator element its block (PS3.19 A.1.5, tag)."""
    blocks: dict[tuple[int, str], list[int]] = {}
    for key, element in out.items():
        tag = int(key, 16)
        if (tag >> 16) & 1 and 0x10 <= tag & 0xFFFF <= 0xFF:
            values = element.get("Value")
            if values and isinstance(values[0], str):
                blocks.setdefault((tag >> 16, values[0].strip(" ")), []).append(tag & 0xFF)
    for tag, creator, element, where in private:
        group, low = tag >> 16, tag & 0xFF
        candidates = blocks.get((group, creator.strip(" ")))
        if candidates is None:
            used = {int(k[6:], 16) for k in out if int(k[:4], 16) == group and k[4:6] == "00"}
            free = [block for block in range(0x10, 0x100) if block not in used]
            if not free:
                raise DicomXmlError(f"DicomAttribute {where}: no free private block for {creator!r}")
            out[f"{group:04X}00{free[0]:02X}"] = {"vr": "LO", "Value": [creator]}
            candidates = blocks[(group, creator.strip(" "))] = [free[0]]
        for block in candidates:
            key = f"{group:04X}{block:02X}{low:02X}"
            if key not in out:
                out[key] = element
                break
        else:
            raise DicomXmlError(f"DicomAttribute {where} (privateCreator {creator!r}): tag appears twice")


def _number(node: ET.Element, where: str) -> int:
    text = node.get("number")
    name = _local(node.tag)
    if text is None:
        raise DicomXmlError(f"DicomAttribute {where}: {name} without a number attribute")
    text = text.strip()
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise DicomXmlError(f"DicomAttribute {where}: {name} has number {text!r}, not a positive integer")
    return int(text)


def _parse_attribute(node: ET.Element, vr: str, names: _Names, where: str) -> dict[str, Any]:
    children = list(node)
    if not children:
        return {"vr": vr}
    kinds = {child.tag for child in children}
    if len(kinds) > 1:
        found = ", ".join(sorted(_local(kind) for kind in kinds))
        raise DicomXmlError(f"DicomAttribute {where}: mixes child elements {found}")
    (kind,) = kinds
    if kind == names.bulk_data:
        if len(children) > 1:
            raise DicomXmlError(f"DicomAttribute {where}: more than one BulkData")
        uri = children[0].get("uri")
        if not uri:
            detail = " (a uuid reference is not supported)" if children[0].get("uuid") else ""
            raise DicomXmlError(f"DicomAttribute {where}: BulkData without a uri{detail}")
        return {"vr": vr, "BulkDataURI": uri}
    if kind == names.inline_binary:
        if len(children) > 1:
            raise DicomXmlError(f"DicomAttribute {where}: more than one InlineBinary")
        encoded = "".join((children[0].text or "").split())
        try:
            binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise DicomXmlError(f"DicomAttribute {where}: InlineBinary is not base64: {exc}") from exc
        return {"vr": vr, "InlineBinary": encoded}
    if kind == names.item:
        if vr != "SQ":
            raise DicomXmlError(f"DicomAttribute {where}: Item in an element of vr {vr}")
        numbered = _numbered(children, where)
        if list(numbered) != list(range(1, len(numbered) + 1)):
            raise DicomXmlError(f"DicomAttribute {where}: Items must be numbered 1 to {len(numbered)}")
        items = [_parse_dataset(numbered[n], names, f"{where}/Item {n}/") for n in sorted(numbered)]
        return {"vr": "SQ", "Value": items}
    if kind == names.person_name:
        if vr != "PN":
            raise DicomXmlError(f"DicomAttribute {where}: PersonName in an element of vr {vr}")
        numbered = _numbered(children, where)
        names_out: list[Any] = [{} for _ in range(max(numbered))]
        for n, child in numbered.items():
            names_out[n - 1] = _parse_person_name(child, names, where)
        return {"vr": "PN", "Value": names_out}
    if kind == names.value:
        if vr == "SQ":
            raise DicomXmlError(f"DicomAttribute {where}: Value in a sequence (expected Item)")
        numbered = _numbered(children, where)
        values: list[Any] = [{} if vr == "PN" else None for _ in range(max(numbered))]
        for n, child in numbered.items():
            if len(child):
                raise DicomXmlError(f"DicomAttribute {where}: Value {n} contains elements")
            values[n - 1] = _convert(child.text, vr, where, n)
        return {"vr": vr, "Value": values}
    raise DicomXmlError(f"DicomAttribute {where}: unexpected child element <{_local(kind)}>")


def _numbered(children: list[ET.Element], where: str) -> dict[int, ET.Element]:
    """Children by their ``number``; gaps are allowed (they become nulls), repeats are not."""
    numbered: dict[int, ET.Element] = {}
    for child in children:
        n = _number(child, where)
        if n in numbered:
            raise DicomXmlError(f"DicomAttribute {where}: two {_local(child.tag)} elements with number {n}")
        numbered[n] = child
    return numbered


def _parse_person_name(node: ET.Element, names: _Names, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for group in node:
        label = names.groups.get(group.tag)
        if label is None:
            raise DicomXmlError(f"DicomAttribute {where}: unexpected <{_local(group.tag)}> in PersonName")
        if label in out:
            raise DicomXmlError(f"DicomAttribute {where}: two {label} groups in one PersonName")
        if len(group) == 0:  # no components; tolerate "Family^Given" written as the group's text
            text = group.text or ""
            out[label] = text if text.strip() else ""
            continue
        parts = ["", "", "", "", ""]
        last = -1
        for component in group:
            index = names.components.get(component.tag)
            if index is None:
                found = _local(component.tag)
                raise DicomXmlError(f"DicomAttribute {where}: unexpected <{found}> in {label}")
            parts[index] = component.text or ""
            last = max(last, index)
        out[label] = "^".join(parts[: last + 1])
    return out


def _convert(text: str | None, vr: str, where: str, number: int) -> Any:
    """One ``<Value>``'s text as the JSON value for its VR."""
    if not text:
        return None
    if vr == "PN":  # PS3.19 wants PersonName, but a plain "Family^Given=..." string is unambiguous
        return {group: part for group, part in zip(PN_GROUPS, text.split("="), strict=False) if part}
    if vr in _BINARY_INT_VRS:
        stripped = text.strip()
        if not _INT_TEXT.fullmatch(stripped):
            raise DicomXmlError(f"DicomAttribute {where}: Value {number} {text!r} is not an integer ({vr})")
        return int(stripped)
    if vr in _BINARY_FLOAT_VRS:
        stripped = text.strip()
        try:
            if "_" in stripped:
                raise ValueError(stripped)
            return float(stripped)
        except ValueError:
            message = f"DicomAttribute {where}: Value {number} {text!r} is not a number ({vr})"
            raise DicomXmlError(message) from None
    if vr == "IS" or vr == "DS":
        stripped = text.strip()
        if not stripped:
            return None
        if _INT_TEXT.fullmatch(stripped):
            return int(stripped)
        if _FLOAT_TEXT.fullmatch(stripped):
            number_value = float(stripped)
            if vr == "IS" and number_value.is_integer():
                return int(number_value)
            if vr == "DS":
                return number_value
        return text  # not a valid IS/DS: kept as text, as archive.metadata keeps it
    if vr == "AT":
        stripped = text.strip()
        if not _HEX8.fullmatch(stripped):
            raise DicomXmlError(f"DicomAttribute {where}: Value {number} {text!r} is not a tag (GGGGEEEE)")
        return stripped.upper()
    return text
