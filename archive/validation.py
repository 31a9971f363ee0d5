"""Per-attribute VR validation of stored instances (STOW-RS warnings).

Why this exists: the conformance statement we follow says that an attribute which is
not required by the API but fails validation is stored anyway, with a *warning* — one
warning per failing attribute per instance, only the first reason noted, and a
sequence reported once under its top-level tag. Required attributes (the UIDs and
PatientID) are checked by the caller and turned into *failures*, so they are skipped
here.

"Validation" means checking each value against its Value Representation (PS3.5
§6.2): maximum lengths, character repertoires, date/time formats, numeric string
syntax and ranges, and binary value lengths. Value multiplicity is not checked — the
VM in the data dictionary is a default, the real one is defined per IOD.

The data set comes from ``dcmread(stop_before_pixels=True, defer_size=64 KiB)`` with
``reading_validation_mode = IGNORE``, so most elements are still
:class:`~pydicom.dataelem.RawDataElement`. We inspect the raw bytes (that is what
the sender actually sent, including padding) and never store converted values back
into the data set, and we never trigger a deferred read: a deferred value only gets
its length checked. Nothing in here may raise for a malformed value — every surprise
becomes a problem report, because a validator that crashes turns a warning into a
failed store.

Leniency (see the module tests, which run over pydicom's test corpus): trailing NUL
and space padding is ignored; leading spaces are ignored where PS3.5 calls them
insignificant; text is not checked against the declared character repertoire beyond
"must decode"; C1 control characters and non-ASCII text with the default character set
are tolerated (both are common in real data and harmless to store); private and
implicit-VR-unknown elements are not guessed at.
"""

from __future__ import annotations

import codecs
import datetime
import math
import re
from collections.abc import Collection, MutableSequence
from dataclasses import dataclass
from typing import Any

from pydicom import config
from pydicom.charset import CODES_TO_ENCODINGS, default_encoding, python_encoding
from pydicom.charset import decode_bytes as _pydicom_decode_bytes
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import TEXT_VR_DELIMS, validate_regex, validate_value

__all__ = ["REQUIRED_TAGS", "AttributeProblem", "check_attributes"]

#: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, PatientID —
#: validated by the caller as *failures*, so never reported here as warnings.
REQUIRED_TAGS: frozenset[int] = frozenset({0x0020000D, 0x0020000E, 0x00080018, 0x00080016, 0x00100020})

_SPECIFIC_CHARACTER_SET = 0x00080005
_UNDEFINED_LENGTH = 0xFFFFFFFF
_MAX_SEQUENCE_DEPTH = 64
_ESC = "\x1b"

# Maximum value length in characters, per value (PS3.5 Table 6.2-1). UC, UR and UT
# are limited only by the 32-bit length field. PN is limited per component group.
_MAX_CHARS: dict[str, int] = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "PN": 64 * 3 + 2,  # only used for deferred values: three groups and two '='
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UI": 64,
}
_PN_GROUP_MAX_CHARS = 64

# Size of one value of a binary VR; the value length must be a multiple of it.
# For the ambiguous dictionary VRs of implicit-VR data the smallest candidate is used.
_BINARY_SIZE: dict[str, int] = {
    "AT": 4,
    "FD": 8,
    "FL": 4,
    "OB": 1,
    "OD": 8,
    "OF": 4,
    "OL": 4,
    "OV": 8,
    "OW": 2,
    "SL": 4,
    "SS": 2,
    "SV": 8,
    "UL": 4,
    "US": 2,
    "UV": 8,
    "US or SS": 2,
    "US or SS or OW": 2,
    "US or OW": 2,
    "OB or OW": 1,
}
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
# VRs whose text may use the Specific Character Set (PS3.5 §6.1.2.3); the rest are
# restricted to the default repertoire and are decoded byte for byte.
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
# Single-valued text: the backslash is an ordinary character, not a separator.
_UNSPLIT_VRS = frozenset({"LT", "ST", "UT", "UR"})
# Text that may contain the format effectors CR, LF, FF and TAB.
_FORMATTED_TEXT_VRS = frozenset({"LT", "ST", "UT"})
# Leading spaces are insignificant for these (PS3.5 Table 6.2-1), so they are not
# counted against the length limit nor checked against the repertoire.
_LEADING_SPACE_INSIGNIFICANT = frozenset({"AE", "CS", "DS", "IS", "LO", "SH"})
_KNOWN_VRS = _STRING_VRS | frozenset(_BINARY_SIZE) | {"SQ", "UN"}

_DA_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DA_ACR_NEMA_RE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_TM_RE = re.compile(r"^([01]\d|2[0-3])([0-5]\d((60|[0-5]\d)(\.\d{1,6})?)?)?$")
_TM_ACR_NEMA_RE = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DT_RE = re.compile(
    r"^(\d{4})((0[1-9]|1[0-2])(([0-2]\d|3[01])(([01]\d|2[0-3])"
    r"([0-5]\d((60|[0-5]\d)(\.\d{1,6})?)?)?)?)?)?([+-]([01]\d|2[0-3])[0-5]\d)?$"
)
_UI_LENIENT_RE = re.compile(r"^[0-9A-Za-z.\-]*$")
_C0_CONTROLS = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}
_TEXT_CONTROLS_ALLOWED = frozenset({_ESC})
_FORMATTED_TEXT_CONTROLS_ALLOWED = frozenset({_ESC, "\r", "\n", "\f", "\t"})

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AttributeProblem:
    """One warning about one top-level attribute of one instance.

    ``tag`` is the top-level tag even when the problem is deep inside a sequence,
    because the conformance statement reports a failing sequence once, under its own
    tag. ``message`` names the tag (and, for sequences, the item and nested tag) so
    it can be shown to the sender as-is.
    """

    tag: int
    keyword: str
    message: str


def check_attributes(ds: Dataset, *, skip_tags: Collection[int] = REQUIRED_TAGS) -> list[AttributeProblem]:
    """At most one problem per top-level attribute (the first found), in tag order.

    ``skip_tags`` applies to the top level only: the caller reports those attributes
    as failures. Nested occurrences of the same tags (e.g. a StudyInstanceUID inside
    a request sequence) are ordinary attributes and are validated.
    Never raises for anything found in ``ds``; every oddity is a reported problem.
    """
    skip = frozenset(int(t) for t in skip_tags)
    encodings = _encodings_for(ds, [default_encoding])
    problems: list[AttributeProblem] = []
    for tag in sorted(ds.keys()):
        tag = Tag(tag)
        if int(tag) in skip or tag.group == 0x0002:
            continue
        elem = ds.get_item(tag, keep_deferred=True)
        try:
            reason = _element_problem(elem, ds, encodings, depth=0)
        except RecursionError:
            reason = "sequence nesting too deep to validate"
        except Exception as exc:  # a validator bug must not fail the store
            reason = f"could not be validated ({type(exc).__name__}: {exc})"
        if reason:
            keyword = _keyword(tag)
            problems.append(AttributeProblem(int(tag), keyword, f"{_label(tag, keyword)}: {reason}"))
    return problems


# --------------------------------------------------------------------------- helpers


def _keyword(tag: BaseTag) -> str:
    """Dictionary keyword, or "" for private and unknown tags."""
    if tag.is_private:
        return ""
    try:
        return keyword_for_tag(tag) or ""
    except Exception:
        return ""


def _label(tag: BaseTag, keyword: str | None = None) -> str:
    """``(gggg,eeee) Keyword`` — the form used in every message."""
    keyword = _keyword(tag) if keyword is None else keyword
    text = f"({tag.group:04X},{tag.element:04X})"
    return f"{text} {keyword}" if keyword else text


def _show(value: str) -> str:
    """Quote a value for a message, escaping control characters, bounded in size."""
    if len(value) > 64:
        return repr(value[:64]) + "…"
    return repr(value)


def _charset_terms(ds: Dataset) -> list[str] | None:
    """The Specific Character Set terms of ``ds`` itself, or None if it has none."""
    elem = ds.get_item(_SPECIFIC_CHARACTER_SET, keep_deferred=True)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement):
        if not elem.value:
            return None
        terms = [t.strip(" \x00") for t in elem.value.decode("latin-1").split("\\")]
    else:
        value = elem.value
        if not value:
            return None
        terms = [str(value)] if isinstance(value, str) else [str(v) for v in value]
        terms = [t.strip(" \x00") for t in terms]
    return terms


def _python_encoding(term: str) -> str:
    """Python codec for one DICOM charset term, tolerating the usual misspellings.

    Mirrors pydicom's ``convert_encodings`` but without its warnings (they would
    be emitted once per element and say nothing the problem report doesn't).
    """
    if term in python_encoding:
        return python_encoding[term]
    if re.match("^ISO[^_]IR", term):
        return python_encoding.get("ISO_IR" + term[6:], default_encoding)
    if re.match("^(?=ISO.2022.IR.)(?!ISO 2022 IR )", term):
        return python_encoding.get("ISO 2022 IR " + term[12:], default_encoding)
    try:
        codecs.lookup(term)
    except LookupError:
        return default_encoding
    return term


def _encodings_for(ds: Dataset, inherited: list[str]) -> list[str]:
    """Encodings for text in ``ds``: its own (0008,0005) or the enclosing one's."""
    try:
        terms = _charset_terms(ds)
    except Exception:
        return inherited
    if not terms:
        return inherited
    if not terms[0]:
        terms[0] = "ISO_IR 6"
    return [_python_encoding(t) for t in terms]


def _resolve_vr(raw: RawDataElement) -> str | None:
    """The VR to validate ``raw`` against, or None when it cannot be known.

    Implicit-VR private elements and unknown public elements are not guessed at:
    validating against a guessed VR would only produce noise.
    """
    if raw.VR is not None:
        return str(raw.VR)
    tag = Tag(raw.tag)
    if tag.is_private:
        return None
    if tag.element == 0:
        return "UL"  # group length
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


# ------------------------------------------------------------------- per element


def _element_problem(
    elem: DataElement | RawDataElement, parent: Dataset, encodings: list[str], depth: int
) -> str | None:
    """The first problem with one element, as message text, or None."""
    if isinstance(elem, RawDataElement):
        return _raw_problem(elem, parent, encodings, depth)
    return _converted_problem(elem, encodings, depth)


# Verdicts on short non-sequence values, keyed by everything a verdict depends on. The
# instances of one series repeat most of their values (patient, study, equipment,
# geometry), so at ingest most elements are answered from here: validation cost 0.85 ms
# per 512x512 CT instance before, a third of that after (bench/stow.py, ingest phase).
_VERDICTS: dict[tuple, str | None] = {}
_VERDICTS_MAX = 16_384
_VERDICT_VALUE_MAX = 256  # longer values are rarely repeated and would bloat the cache


def _raw_problem(raw: RawDataElement, parent: Dataset, encodings: list[str], depth: int) -> str | None:
    value = raw.value
    if value is None or raw.VR == "SQ" or len(value) > _VERDICT_VALUE_MAX:
        return _raw_problem_uncached(raw, parent, encodings, depth)
    # ``parent`` only matters for ambiguous VRs (US or SS), which are refused before
    # conversion, so it is not part of the key.
    key = (raw.tag, raw.VR, raw.length, value, raw.is_little_endian, raw.is_implicit_VR, depth, *encodings)
    try:
        return _VERDICTS[key]
    except KeyError:
        pass
    verdict = _raw_problem_uncached(raw, parent, encodings, depth)
    if len(_VERDICTS) >= _VERDICTS_MAX:
        _VERDICTS.clear()  # crude but bounded; refills within a few instances
    _VERDICTS[key] = verdict
    return verdict


def _raw_problem_uncached(
    raw: RawDataElement, parent: Dataset, encodings: list[str], depth: int
) -> str | None:
    vr = _resolve_vr(raw)
    if vr is None or vr == "UN":
        return None
    if vr not in _KNOWN_VRS:
        return f"unknown VR {vr!r}"
    length = raw.length
    if raw.value is None:
        if length == 0 or length == _UNDEFINED_LENGTH:
            return None
        return _deferred_problem(vr, length)
    value: bytes = raw.value
    if length != _UNDEFINED_LENGTH and len(value) != length:
        # pydicom tolerates a value cut short by the end of the file or item.
        return f"value truncated ({len(value)} of {length} bytes present)"
    if not value:
        return None

    if vr == "SQ":
        try:
            seq = convert_raw_data_element(raw, encoding=encodings, ds=parent).value
        except Exception as exc:
            return f"sequence cannot be parsed ({type(exc).__name__}: {exc})"
        return _sequence_problem(seq, encodings, depth)

    if vr in _BINARY_SIZE:
        problem = _binary_length_problem(vr, len(value))
    else:
        text, problem = _decode(vr, value, encodings)
        if problem is None:
            problem = _string_problem(vr, _split(vr, text))
            if problem is None and Tag(raw.tag) == _SPECIFIC_CHARACTER_SET:
                problem = _charset_problem(_split(vr, text))
        if problem is None and len(value) % 2:
            problem = f"odd value length ({len(value)} bytes)"
    if problem is not None:
        return problem
    # Our checks passed; the value must now also be usable by pydicom later on.
    try:
        convert_raw_data_element(raw, encoding=encodings, ds=parent)
    except Exception as exc:
        return f"value cannot be converted as {vr} ({type(exc).__name__}: {exc})"
    return None


def _deferred_problem(vr: str, length: int) -> str | None:
    """Length-only checks for a value larger than the defer size (not read)."""
    if vr in _BINARY_SIZE:
        return _binary_length_problem(vr, length)
    # A deferred value is > 64 KiB; any limited string VR is far below that even at
    # four bytes per character, so the byte count is enough to know it is too long.
    if vr in _MAX_CHARS and length > _MAX_CHARS[vr]:
        return f"value length {length} bytes exceeds the {vr} maximum of {_MAX_CHARS[vr]} characters"
    if length % 2:
        return f"odd value length ({length} bytes)"
    return None


def _binary_length_problem(vr: str, length: int) -> str | None:
    size = _BINARY_SIZE[vr]
    if size > 1 and length % size:
        return f"value length {length} is not a multiple of {size} as required for {vr}"
    if length % 2:
        return f"odd value length ({length} bytes)"
    return None


def _converted_problem(elem: DataElement, encodings: list[str], depth: int) -> str | None:
    """Checks for an element pydicom already converted (accessed earlier, or an
    undefined-length sequence, which the reader always parses)."""
    vr = str(elem.VR)
    if vr == "UN" or elem.is_buffered:
        return None
    if vr not in _KNOWN_VRS:
        return f"unknown VR {vr!r}"
    value = elem.value
    if vr == "SQ":
        return _sequence_problem(value or [], encodings, depth)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    if vr in _BINARY_SIZE:
        if isinstance(value, bytes | bytearray):
            return _binary_length_problem(vr, len(value))
        for v in _as_list(value):
            problem = _pydicom_problem(vr, v)
            if problem:
                return f"invalid {vr} value {v!r} ({problem})"
        return None
    strings: list[str] = []
    for v in _as_list(value):
        if isinstance(v, bytes | bytearray):
            text, problem = _decode(vr, bytes(v), encodings)
            if problem:
                return problem
            strings.extend(_split(vr, text))
        else:
            original = getattr(v, "original_string", None)
            strings.append(original if isinstance(original, str) else str(v))
    problem = _string_problem(vr, strings)
    if problem is None and Tag(elem.tag) == _SPECIFIC_CHARACTER_SET:
        problem = _charset_problem(strings)
    return problem


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, MutableSequence | list | tuple) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def _sequence_problem(seq: Any, encodings: list[str], depth: int) -> str | None:
    """First problem in any item, as "item N (gggg,eeee) Keyword: reason"."""
    if depth >= _MAX_SEQUENCE_DEPTH:
        return f"sequences nested more than {_MAX_SEQUENCE_DEPTH} levels deep"
    for index, item in enumerate(seq, start=1):
        if not isinstance(item, Dataset):
            return f"item {index} is not a data set"
        item_encodings = _encodings_for(item, encodings)
        for tag in sorted(item.keys()):
            tag = Tag(tag)
            elem = item.get_item(tag, keep_deferred=True)
            reason = _element_problem(elem, item, item_encodings, depth + 1)
            if reason:
                return f"item {index} {_label(tag)}: {reason}"
    return None


# --------------------------------------------------------------------- strings


def _decode(vr: str, value: bytes, encodings: list[str]) -> tuple[str, str | None]:
    """Decode raw text; a value the declared character set cannot decode is a problem.

    Default-repertoire VRs are decoded byte for byte (latin-1) so that any non-ASCII
    byte is seen by the repertoire checks instead of failing here.
    """
    if vr not in _CHARSET_VRS:
        return value.decode("latin-1"), None
    if b"\x1b" not in value or len(encodings) == 1:
        # One character set: Python's codec handles (or passes through) any ESC.
        try:
            return value.decode(encodings[0]), None
        except (UnicodeError, LookupError):
            text = value.decode("latin-1")
            return text, f"value cannot be decoded with character set {encodings[0]!r}: {_show(text)}"
    # Code extensions (ISO 2022): every escape sequence must switch to a declared
    # character set; checked first so that pydicom's decoder has nothing to warn about.
    for fragment in re.findall(rb"\x1b[^\x1b]*", value):
        code = fragment[:4] if fragment.startswith((b"\x1b$(", b"\x1b$)")) else fragment[:3]
        encoding = CODES_TO_ENCODINGS.get(code)
        if encoding is None or (encoding not in encodings and encoding != default_encoding):
            return value.decode("latin-1"), f"unknown or undeclared escape sequence {code!r}"
    try:
        text = _pydicom_decode_bytes(value, encodings, TEXT_VR_DELIMS)
    except Exception as exc:
        return value.decode("latin-1"), f"value cannot be decoded ({type(exc).__name__}: {exc})"
    if "\ufffd" in text and "\ufffd".encode() not in value:
        return text, f"value cannot be decoded with character sets {encodings!r}: {_show(text)}"
    return text, None


def _split(vr: str, text: str) -> list[str]:
    """Split into values and drop padding (trailing NULs/spaces never warn)."""
    values = [text] if vr in _UNSPLIT_VRS else text.split("\\")
    return [v.rstrip("\x00 ") for v in values]


def _string_problem(vr: str, values: list[str]) -> str | None:
    """First problem among the (already split, right-stripped) values."""
    for raw_value in values:
        value = raw_value.lstrip(" ") if vr in _LEADING_SPACE_INSIGNIFICANT else raw_value
        if not value:
            continue
        problem = _value_problem(vr, value)
        if problem:
            return problem
    return None


def _value_problem(vr: str, value: str) -> str | None:
    if vr == "PN":
        return _pn_problem(value)
    # Form first: "invalid DA value '2021-13-45'" says more than "longer than 8".
    check = _VALUE_CHECKS.get(vr)
    problem = check(value) if check else None
    limit = _MAX_CHARS.get(vr)
    if problem is None and limit is not None and len(value) > limit:
        problem = f"value longer than {limit} characters"
    return problem


def _pydicom_problem(vr: str, value: Any, *, form_only: bool = False) -> str | None:
    """pydicom's own validator for ``vr``, as text (None when valid).

    ``form_only`` uses just pydicom's regular expression for the VR, so that the
    length limit is reported separately with a clearer message.
    """
    try:
        validate_value(vr, value, config.RAISE, validate_regex if form_only else None)
    except (ValueError, TypeError) as exc:
        return str(exc).split(" Please see", 1)[0]
    return None


def _control_problem(value: str, allowed: frozenset[str]) -> str | None:
    for char in value:
        if char in _C0_CONTROLS and char not in allowed:
            return f"contains control character 0x{ord(char):02X}: {_show(value)}"
    return None


def _check_ae(value: str) -> str | None:
    if _pydicom_problem("AE", value, form_only=True):
        return f"invalid AE value {_show(value)} (only printable ASCII characters are allowed)"
    return None


def _check_as(value: str) -> str | None:
    if _pydicom_problem("AS", value, form_only=True):
        return f"invalid AS value {_show(value)} (expected nnnD, nnnW, nnnM or nnnY)"
    return None


def _check_cs(value: str) -> str | None:
    if _pydicom_problem("CS", value, form_only=True):
        return (
            f"invalid CS value {_show(value)} "
            "(only upper-case letters, digits, space and underscore are allowed)"
        )
    return None


def _check_da(value: str) -> str | None:
    match = _DA_RE.match(value)
    if not match:
        if _DA_ACR_NEMA_RE.match(value):
            return f"ACR-NEMA style DA value {_show(value)} (expected YYYYMMDD)"
        return f"invalid DA value {_show(value)} (expected YYYYMMDD)"
    year, month, day = (int(g) for g in match.groups())
    try:
        datetime.date(year, month, day)
    except ValueError:
        return f"invalid DA value {_show(value)} (not a calendar date)"
    return None


def _check_dt(value: str) -> str | None:
    match = _DT_RE.match(value)
    if not match:
        return f"invalid DT value {_show(value)} (expected YYYYMMDDHHMMSS.FFFFFF&ZZXX or a prefix of it)"
    year = int(match.group(1))
    month = int(match.group(3)) if match.group(3) else 1
    day = int(match.group(5)) if match.group(5) else 1
    try:
        datetime.date(year, month, day)
    except ValueError:
        return f"invalid DT value {_show(value)} (not a calendar date)"
    return None


def _check_tm(value: str) -> str | None:
    if _TM_RE.match(value):
        return None
    if _TM_ACR_NEMA_RE.match(value):
        return f"ACR-NEMA style TM value {_show(value)} (expected HHMMSS.FFFFFF)"
    return f"invalid TM value {_show(value)} (expected HHMMSS.FFFFFF or a prefix of it)"


def _check_ds(value: str) -> str | None:
    if _pydicom_problem("DS", value, form_only=True):
        return f"invalid DS value {_show(value)} (expected a decimal number)"
    if not math.isfinite(float(value)):
        return f"DS value {_show(value)} is out of range"
    return None


def _check_is(value: str) -> str | None:
    if _pydicom_problem("IS", value, form_only=True):
        return f"invalid IS value {_show(value)} (expected an integer)"
    if not _INT32_MIN <= int(value) <= _INT32_MAX:
        return f"IS value {_show(value)} is out of range (-2^31 to 2^31-1)"
    return None


def _check_ui(value: str) -> str | None:
    if not _pydicom_problem("UI", value, form_only=True):
        return None
    if _UI_LENIENT_RE.match(value) and re.search(r"[A-Za-z\-]", value):
        return f"invalid UI value {_show(value)} (contains characters other than digits and dots)"
    return f"invalid UI value {_show(value)} (expected dot-separated numbers without leading zeros)"


def _check_ur(value: str) -> str | None:
    if _pydicom_problem("UR", value, form_only=True):
        return f"invalid UR value {_show(value)} (not a URI)"
    return None


def _check_text(value: str) -> str | None:
    return _control_problem(value, _TEXT_CONTROLS_ALLOWED)


def _check_formatted_text(value: str) -> str | None:
    return _control_problem(value, _FORMATTED_TEXT_CONTROLS_ALLOWED)


def _pn_problem(value: str) -> str | None:
    groups = value.split("=")
    if len(groups) > 3:
        return f"PN value {_show(value)} has more than 3 component groups"
    for group in groups:
        if len(group) > _PN_GROUP_MAX_CHARS:
            return f"PN component group longer than {_PN_GROUP_MAX_CHARS} characters"
        if group.count("^") > 4:
            return f"PN value {_show(value)} has more than 5 components in a group"
    return _control_problem(value, _TEXT_CONTROLS_ALLOWED)


_VALUE_CHECKS = {
    "AE": _check_ae,
    "AS": _check_as,
    "CS": _check_cs,
    "DA": _check_da,
    "DS": _check_ds,
    "DT": _check_dt,
    "IS": _check_is,
    "LO": _check_text,
    "LT": _check_formatted_text,
    "SH": _check_text,
    "ST": _check_formatted_text,
    "TM": _check_tm,
    "UC": _check_text,
    "UI": _check_ui,
    "UR": _check_ur,
    "UT": _check_formatted_text,
}


def _charset_problem(terms: list[str]) -> str | None:
    """(0008,0005) must name character sets we can decode, or text is garbled."""
    for index, term in enumerate(terms):
        term = term.strip()
        if not term and index == 0:
            continue
        if term not in python_encoding:
            return f"unknown Specific Character Set term {_show(term)}"
    return None
