"""DICOM status and reason codes used by Archway, as data.

Each code records its category explicitly rather than deriving it from the numeric
range: PS3.18's store reasons 45070/45071 (0xB00E/0xB00F) sit in PS3.4's warning range
but are *failures* in STOW-RS (conformance statement, "Store failure reason codes").

References: PS3.4 Annex B.2.3 (Storage statuses), PS3.18 §10.5.3, PS3.4 Annex CC.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Category(StrEnum):
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


class Status(IntEnum):
    # Store failures (FailureReason, 0008,1197)
    PROCESSING_FAILURE = 0x0110  # 272
    MISSING_ATTRIBUTE = 0x0120  # 288
    MISSING_ATTRIBUTE_VALUE = 0x0121  # 289
    OUT_OF_RESOURCES = 0xA700  # 42752
    VALIDATION_FAILED = 0xA900  # 43264
    STUDY_UID_MISMATCH = 0xA901  # 43265
    INSTANCE_EXISTS = 0xB00E  # 45070
    INSTANCE_IN_FLIGHT = 0xB00F  # 45071
    # Store warnings (WarningReason, 0008,1196)
    COERCED = 0xB000  # 45056
    ELEMENTS_DISCARDED = 0xB006  # 45062
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xB007  # 45063


STATUSES: dict[int, tuple[Category, str]] = {
    Status.PROCESSING_FAILURE: (Category.FAILURE, "Processing failure"),
    Status.MISSING_ATTRIBUTE: (Category.FAILURE, "Missing attribute"),
    Status.MISSING_ATTRIBUTE_VALUE: (Category.FAILURE, "Missing attribute value"),
    Status.OUT_OF_RESOURCES: (Category.FAILURE, "Out of resources"),
    Status.VALIDATION_FAILED: (Category.FAILURE, "The DICOM instance failed validation"),
    Status.STUDY_UID_MISMATCH: (
        Category.FAILURE,
        "The instance's StudyInstanceUID does not match the study in the request URL",
    ),
    Status.INSTANCE_EXISTS: (Category.FAILURE, "An instance with the same SOPInstanceUID is already stored"),
    Status.INSTANCE_IN_FLIGHT: (
        Category.FAILURE,
        "The instance is being stored by another request (or an earlier attempt is being cleaned up)",
    ),
    Status.COERCED: (Category.WARNING, "Attributes were coerced"),
    Status.ELEMENTS_DISCARDED: (Category.WARNING, "Elements were discarded"),
    Status.DATASET_DOES_NOT_MATCH_SOP_CLASS: (
        Category.WARNING,
        "The data set does not match the SOP class (attribute validation warnings)",
    ),
}


def category(code: int) -> Category:
    """The category of a known code; unknown codes are failures (the safe reading)."""
    return STATUSES.get(code, (Category.FAILURE, ""))[0]


def describe(code: int) -> str:
    return STATUSES.get(code, (Category.FAILURE, f"Status 0x{code:04X}"))[1]
