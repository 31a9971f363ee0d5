"""Which attributes belong to which query/retrieve level.

From the conformance statement's "Default Study/Series/Instance tags" and "Other …
tags" tables (``../shared/spec/002_…txt``); QIDO returns these from the index, so
ingest copies them into ``Study.attributes`` / ``Series.attributes`` (latest wins).
"""

from __future__ import annotations

STUDY_DEFAULT_TAGS = (
    0x00080020,  # StudyDate
    0x00080050,  # AccessionNumber
    0x00081030,  # StudyDescription
    0x00080090,  # ReferringPhysicianName
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x00100030,  # PatientBirthDate
    0x0020000D,  # StudyInstanceUID
)
STUDY_OTHER_TAGS = (
    0x00080005,  # SpecificCharacterSet
    0x00080030,  # StudyTime
    0x00080056,  # InstanceAvailability
    0x00080201,  # TimezoneOffsetFromUTC
    0x00080063,  # AnatomicRegionsInStudyCodeSequence
    0x00081032,  # ProcedureCodeSequence
    0x00081060,  # NameOfPhysiciansReadingStudy
    0x00081080,  # AdmittingDiagnosesDescription
    0x00081110,  # ReferencedStudySequence
    0x00101010,  # PatientAge
    0x00101020,  # PatientSize
    0x00101030,  # PatientWeight
    0x00102180,  # Occupation
    0x001021B0,  # AdditionalPatientHistory
    0x00100040,  # PatientSex
    0x00200010,  # StudyID
    0x00100021,  # IssuerOfPatientID
)
SERIES_DEFAULT_TAGS = (
    0x00080060,  # Modality
    0x00081090,  # ManufacturerModelName
    0x0020000E,  # SeriesInstanceUID
    0x00400244,  # PerformedProcedureStepStartDate
)
SERIES_OTHER_TAGS = (
    0x00080005,  # SpecificCharacterSet
    0x00080201,  # TimezoneOffsetFromUTC
    0x00200011,  # SeriesNumber
    0x00200060,  # Laterality
    0x00080021,  # SeriesDate
    0x00080031,  # SeriesTime
    0x0008103E,  # SeriesDescription
    0x00400245,  # PerformedProcedureStepStartTime
    0x00400275,  # RequestAttributesSequence
    0x00180015,  # BodyPartExamined
)
INSTANCE_DEFAULT_TAGS = (0x00080018,)  # SOPInstanceUID
INSTANCE_OTHER_TAGS = (
    0x00080005,  # SpecificCharacterSet
    0x00080016,  # SOPClassUID
    0x00080056,  # InstanceAvailability
    0x00080201,  # TimezoneOffsetFromUTC
    0x00200013,  # InstanceNumber
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280100,  # BitsAllocated
    0x00280008,  # NumberOfFrames
)

STUDY_TAGS = frozenset(STUDY_DEFAULT_TAGS + STUDY_OTHER_TAGS)
SERIES_TAGS = frozenset(SERIES_DEFAULT_TAGS + SERIES_OTHER_TAGS)
INSTANCE_TAGS = frozenset(INSTANCE_DEFAULT_TAGS + INSTANCE_OTHER_TAGS)


def subset(metadata: dict, tags: frozenset[int]) -> dict:
    """The DICOM JSON elements of ``metadata`` whose tags are in ``tags``."""
    keys = {f"{tag:08X}" for tag in tags}
    return {key: value for key, value in metadata.items() if key in keys}
