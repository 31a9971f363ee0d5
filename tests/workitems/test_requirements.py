"""The attribute requirement tables (PS3.4 Table CC.2.5-3), without HTTP."""

from __future__ import annotations

from tests.workitems.helpers import el, performed, workitem
from workitems.requirements import check


def test_a_complete_create_data_set_passes():
    assert check(workitem("1.2.3"), "create") == []


def test_create_names_each_missing_type_1_and_type_2_attribute():
    dataset = workitem("1.2.3")
    del dataset["00741204"]  # ProcedureStepLabel, Type 1
    dataset["00404005"] = el("DT")  # ScheduledProcedureStepStartDateTime, Type 1 but empty
    del dataset["00100010"]  # PatientName, Type 2
    problems = check(dataset, "create")
    assert problems == [
        "ProcedureStepLabel (0074,1204) is required and must have a value.",
        "ScheduledProcedureStepStartDateTime (0040,4005) is required and must have a value.",
        "PatientName (0010,0010) is required (it may be empty).",
    ]


def test_create_checks_sequence_items():
    dataset = workitem("1.2.3")
    dataset["0040A370"]["Value"][0].pop("0020000D")
    dataset["00404025"] = el("SQ", {"00080100": el("SH", "X")})
    problems = check(dataset, "create")
    assert "ReferencedRequestSequence (0040,A370)[1] > StudyInstanceUID (0020,000D) is required" in " ".join(
        problems
    )
    assert any(
        "ScheduledStationNameCodeSequence (0040,4025)[1] > CodingSchemeDesignator" in p for p in problems
    )


def test_create_refuses_a_transaction_uid_and_a_performed_procedure():
    dataset = workitem("1.2.3", **{"00081195": el("UI", "1.2"), **performed()})
    problems = check(dataset, "create")
    assert "TransactionUID (0008,1195) is not allowed here." in problems
    assert any(
        p.startswith("UnifiedProcedureStepPerformedProcedureSequence (0074,1216) must be empty")
        for p in problems
    )


def test_update_checks_only_what_is_sent_and_forbids_some_attributes():
    assert check({"00741204": el("LO", "new label")}, "update") == []
    assert check({"00741204": el("LO")}, "update") == [
        "ProcedureStepLabel (0074,1204) may not be emptied (Type 1)."
    ]
    assert check({"00080018": el("UI", "1.2")}, "update") == [
        "SOPInstanceUID (0008,0018) may not be changed by an update."
    ]
    assert check({"00741000": el("CS", "COMPLETED")}, "update") == [
        "ProcedureStepState (0074,1000) may not be changed by an update."
    ]


def test_final_state_completed_needs_the_performed_procedure():
    dataset = workitem("1.2.3")
    assert check(dataset, "completed") == [
        "UnifiedProcedureStepPerformedProcedureSequence (0074,1216) is required and must have a value."
    ]
    dataset.update(performed())
    assert check(dataset, "completed") == []
    dataset["00741216"]["Value"][0].pop("00404051")
    assert check(dataset, "completed") == [
        "UnifiedProcedureStepPerformedProcedureSequence (0074,1216)[1] > "
        "PerformedProcedureStepEndDateTime (0040,4051) is required and must have a value."
    ]


def test_final_state_canceled_needs_the_cancellation_date_time():
    dataset = workitem("1.2.3")
    assert check(dataset, "canceled") == [
        "ProcedureStepProgressInformationSequence (0074,1002) is required and must have a value."
    ]
    dataset["00741002"] = el("SQ", {"00404052": el("DT", "20240301100000")})
    assert check(dataset, "canceled") == []
