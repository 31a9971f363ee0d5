"""Archway's domain errors: each carries its DICOM status code, never an HTTP status.

Only ``dicomweb`` decides HTTP statuses (``dicomweb/exceptions.py`` and
``dicomweb/responses.py``), so the same error can be a FailedSOPSequence item in one
response and a 409 in another.
"""

from __future__ import annotations

from typing import ClassVar

from archive.status import Status


class DicomError(Exception):
    """A DICOM-level failure with its status code and, where known, the offending tag."""

    status: ClassVar[int] = Status.PROCESSING_FAILURE

    def __init__(self, message: str, *, tag: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag


class UnreadableInstance(DicomError):
    """Not a readable DICOM Part 10 stream."""

    status = Status.PROCESSING_FAILURE


class InvalidInstance(DicomError):
    """A required attribute is missing or malformed (PS3.18: 43264)."""

    status = Status.VALIDATION_FAILED


class StudyMismatch(DicomError):
    status = Status.STUDY_UID_MISMATCH


class InstanceExists(DicomError):
    status = Status.INSTANCE_EXISTS


class InstanceInFlight(DicomError):
    status = Status.INSTANCE_IN_FLIGHT


class StorageFailure(DicomError):
    """The blob store or index could not take the instance (transient)."""

    status = Status.OUT_OF_RESOURCES
