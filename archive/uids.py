"""UID validation and generation.

Lenient on what we accept, strict on what we emit (pynetdicom ``_validators``;
highdicom's note on checks "stricter than the standard"): the conformance statement
accepts 1 to 64 characters of letters, digits, ``.`` and ``-``, so ingest and URL paths
accept that; UIDs Archway generates are standard (digits and dots, no leading zeros).
"""

from __future__ import annotations

import re

from pydicom.uid import generate_uid as _pydicom_generate_uid

UID_PATTERN = r"[0-9A-Za-z.\-]{1,64}"
_UID_RE = re.compile(rf"\A{UID_PATTERN}\Z")
_STANDARD_UID_RE = re.compile(r"\A(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\Z")

# Archway's UID root (a UUID-derived 2.25 root would also do; pydicom's prefix is widely used).
ARCHWAY_UID_PREFIX = "1.2.826.0.1.3680043.10.1455."


def validate_uid(value: str | None) -> tuple[bool, str]:
    """Return ``(ok, reason)`` for a UID accepted on ingest or in a URL path."""
    if value is None or value == "":
        return False, "the UID is empty"
    if len(value) > 64:
        return False, f"the UID is {len(value)} characters long (at most 64)"
    if not _UID_RE.match(value):
        return False, "the UID may contain only letters, digits, '.' and '-'"
    return True, ""


def is_valid_uid(value: str | None) -> bool:
    return validate_uid(value)[0]


def is_standard_uid(value: str) -> bool:
    """True for a UID as PS3.5 §9.1 defines it (what we generate)."""
    return len(value) <= 64 and bool(_STANDARD_UID_RE.match(value))


def generate_uid() -> str:
    return _pydicom_generate_uid(prefix=ARCHWAY_UID_PREFIX)
