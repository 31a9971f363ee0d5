"""Typed values out of DICOM JSON for the index columns: dates, times, names, numbers.

Lenient by design: a value that does not parse becomes ``None`` / ``""`` in its column
(and was already reported as a store warning), so search simply does not match it —
the conformance statement's behaviour for attributes stored with warnings.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

Element = dict[str, Any]


def first(data: dict[str, Element], tag: int) -> Any:
    element = data.get(f"{tag:08X}")
    if not element:
        return None
    values = element.get("Value")
    return values[0] if values else None


def text(data: dict[str, Element], tag: int, max_length: int = 64) -> str:
    value = first(data, tag)
    if value is None:
        return ""
    if isinstance(value, dict):  # PN
        value = value.get("Alphabetic", "")
    return str(value)[:max_length]


def all_text(data: dict[str, Element], tag: int) -> list[str]:
    element = data.get(f"{tag:08X}") or {}
    return [str(v) for v in element.get("Value", []) if v not in (None, "")]


def person_name(data: dict[str, Element], tag: int) -> str:
    value = first(data, tag)
    if isinstance(value, dict):
        return str(value.get("Alphabetic", ""))[:324]
    return ""


def normalize_name(value: str) -> str:
    """Upper-case, accent-folded form used for case- and accent-insensitive PN search.

    ``"Müller^Jürgen"`` → ``"MULLER^JURGEN"``. Component separators are kept so that
    matching can address name components.
    """
    decomposed = unicodedata.normalize("NFKD", value)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return folded.upper().strip()


def date(data: dict[str, Element], tag: int) -> dt.date | None:
    value = first(data, tag)
    if not isinstance(value, str):
        return None
    digits = value.strip().replace(".", "") if len(value.strip()) == 10 else value.strip()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def time(data: dict[str, Element], tag: int) -> dt.time | None:
    value = first(data, tag)
    if not isinstance(value, str):
        return None
    value = value.strip().replace(":", "")
    main, _, fraction = value.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6):
        return None
    try:
        hour = int(main[:2])
        minute = int(main[2:4] or 0)
        second = min(int(main[4:6] or 0), 59)
        micro = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
        return dt.time(hour, minute, second, micro)
    except ValueError:
        return None


def integer(data: dict[str, Element], tag: int) -> int | None:
    value = first(data, tag)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -(2**31) <= number < 2**31 else None
