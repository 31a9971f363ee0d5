"""Attribute requirements per UPS transaction (PS3.4 Table CC.2.5-3), as data.

Codes, per column (create = N-CREATE, update = N-SET, final = before COMPLETED/CANCELED):

* ``"1"``  present with a value
* ``"2"``  present, may be empty
* ``"E"``  if present, empty (the SCP fills it: e.g. the performed procedure at create)
* ``"-"``  not allowed: must be absent (update: may not be changed)
* ``"O"``  optional: 1C, 2C and 3 (conditional codes are treated as optional, as the
  conformance statement does)

In update, a Type 1 attribute that is sent must keep a value (it may not be emptied).
Sequence attributes carry the requirements of their items. ``check`` returns one message
per offending attribute, naming it by keyword and tag, so a 400 tells the client exactly
what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword


@dataclass(frozen=True, slots=True)
class Requirement:
    keyword: str
    create: str = "O"
    update: str = "O"
    completed: str = "O"  # final state COMPLETED
    canceled: str = "O"  # final state CANCELED
    items: tuple[Requirement, ...] = ()

    @property
    def key(self) -> str:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return f"{tag:08X}"


R = Requirement

_CODE = (
    R("CodeValue", "1", "1", "1", "1"),
    R("CodingSchemeDesignator", "1", "1", "1", "1"),
    R("CodeMeaning", "1", "1", "1", "1"),
)

TABLE: tuple[Requirement, ...] = (
    # SOP Common
    R("SpecificCharacterSet"),
    R("SOPClassUID", update="-"),
    R("SOPInstanceUID", update="-"),
    # Unified Procedure Step Scheduled Procedure Information
    R("ScheduledProcedureStepPriority", "1", "1", "1", "1"),
    R("ScheduledProcedureStepModificationDateTime"),
    R("ProcedureStepLabel", "1", "1", "1", "1"),
    R("WorklistLabel", "O", "1"),
    R("ScheduledStationNameCodeSequence", "2", items=_CODE),
    R("ScheduledStationClassCodeSequence", "2", items=_CODE),
    R("ScheduledStationGeographicLocationCodeSequence", "2", items=_CODE),
    R("ScheduledHumanPerformersSequence"),
    R("ScheduledProcedureStepStartDateTime", "1", "1", "1", "1"),
    R("ExpectedCompletionDateTime"),
    R("ScheduledWorkitemCodeSequence", "2", items=_CODE),
    R("CommentsOnTheScheduledProcedureStep"),
    R("InputReadinessState", "1", "1", "1", "1"),
    R("InputInformationSequence", "2"),
    R("StudyInstanceUID", "O", "O"),
    # Patient
    R("PatientName", "2", completed="2", canceled="2"),
    R("PatientID", "2", completed="2", canceled="2"),
    R("PatientBirthDate", "2", completed="2", canceled="2"),
    R("PatientSex", "2", completed="2", canceled="2"),
    R("AdmissionID", "2"),
    R("IssuerOfAdmissionIDSequence", "2"),
    # Service Request (Referenced Request Sequence items)
    R(
        "ReferencedRequestSequence",
        "2",
        items=(
            R("StudyInstanceUID", "1", "1"),
            R("AccessionNumber", "2", "2"),
            R("RequestedProcedureID", "2", "2"),
            R("RequestedProcedureDescription", "2", "2"),
            R("RequestedProcedureCodeSequence", "2", "2"),
        ),
    ),
    # UPS Relationship
    R("ReplacedProcedureStepSequence"),
    # UPS Progress Information
    R("ProcedureStepState", "1", "-", "1", "1"),
    R(
        "ProcedureStepProgressInformationSequence",
        "E",
        canceled="1",
        items=(
            R("ProcedureStepProgress"),
            R("ProcedureStepProgressDescription"),
            R("ProcedureStepCancellationDateTime", canceled="1"),
            R("ReasonForCancellation"),
        ),
    ),
    # UPS Performed Procedure Information
    R(
        "UnifiedProcedureStepPerformedProcedureSequence",
        "E",
        completed="1",
        items=(
            R("ActualHumanPerformersSequence"),
            R("PerformedStationNameCodeSequence", completed="2"),
            R("PerformedProcedureStepStartDateTime", completed="1"),
            R("PerformedWorkitemCodeSequence", completed="2"),
            R("PerformedProcedureStepEndDateTime", completed="1"),
            R("OutputInformationSequence", completed="2"),
        ),
    ),
    # The performer's lock is never part of a data set sent by a client.
    R("TransactionUID", "-", "-"),
)


def _present(dataset: dict, key: str) -> bool:
    return key in dataset


def _has_value(dataset: dict, key: str) -> bool:
    element = dataset.get(key) or {}
    values = element.get("Value")
    if not values:
        return False
    return any(v not in (None, "", {}) for v in values)


def _label(requirement: Requirement, path: str) -> str:
    tag = requirement.key
    return f"{path}{requirement.keyword} ({tag[:4]},{tag[4:]})"


def check(dataset: dict, column: str, table: Iterable[Requirement] = TABLE, path: str = "") -> list[str]:
    """Messages for every attribute of ``dataset`` that breaks ``column``'s requirements.

    ``column`` is ``create``, ``update``, ``completed`` or ``canceled``. In ``update`` only
    the attributes sent are checked (N-SET changes what it names, nothing else).
    """
    problems: list[str] = []
    for requirement in table:
        code = getattr(requirement, column)
        key = requirement.key
        label = _label(requirement, path)
        present = _present(dataset, key)
        if column == "update":
            if not present:
                continue
            if code == "-":
                problems.append(f"{label} may not be changed by an update.")
                continue
            if code == "1" and not _has_value(dataset, key):
                problems.append(f"{label} may not be emptied (Type 1).")
                continue
        elif code == "1" and not _has_value(dataset, key):
            problems.append(f"{label} is required and must have a value.")
            continue
        elif code == "2" and not present:
            problems.append(f"{label} is required (it may be empty).")
            continue
        elif code == "E" and _has_value(dataset, key):
            problems.append(f"{label} must be empty when a workitem is created.")
            continue
        elif code == "-" and present:
            problems.append(f"{label} is not allowed here.")
            continue
        if requirement.items and present:
            for number, item in enumerate((dataset.get(key) or {}).get("Value") or [], start=1):
                if isinstance(item, dict):
                    problems += check(item, column, requirement.items, f"{label}[{number}] > ")
    return problems
