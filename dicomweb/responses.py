"""Store response dataset and status (PS3.18 §10.5.3, conformance statement "Store").

Status: 200 every instance stored without warnings; 202 some failed or any warnings;
409 none stored. (204 for an empty request and 400/415 for malformed ones are decided
before any instance is read.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archive.ingest import StoreOutcome

RetrieveUrl = Callable[..., str]


def _ui(value: str | None) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _us(value: int) -> dict:
    return {"vr": "US", "Value": [value]}


def _failed_attributes(messages: Sequence[str]) -> dict:
    # (0074,1048) FailedAttributesSequence items carry (0000,0902) ErrorComment.
    return {
        "vr": "SQ",
        "Value": [{"00000902": {"vr": "LO", "Value": [message[: 64 * 16]]}} for message in messages],
    }


def store_response(
    outcomes: Sequence[StoreOutcome],
    *,
    study_url: Callable[[str], str],
    instance_url: Callable[[StoreOutcome], str],
    request_study_uid: str | None,
) -> tuple[int, dict]:
    """The response status and DICOM JSON dataset for a store request's outcomes."""
    referenced: list[dict] = []
    failed: list[dict] = []
    for outcome in outcomes:
        item: dict = {
            "00081150": _ui(outcome.sop_class_uid),
            "00081155": _ui(outcome.instance_uid),
        }
        if outcome.stored:
            item["00081190"] = {"vr": "UR", "Value": [instance_url(outcome)]}
            if outcome.warnings:
                item["00081196"] = _us(int(outcome.warning_reason or 0))
                item["00741048"] = _failed_attributes(outcome.warnings)
            referenced.append(dict(sorted(item.items())))
        else:
            item["00081197"] = _us(int(outcome.failure or 0))
            if outcome.failure_message:
                item["00741048"] = _failed_attributes([outcome.failure_message])
            failed.append(dict(sorted(item.items())))
    dataset: dict = {}
    stored_studies = {outcome.study_uid for outcome in outcomes if outcome.stored}
    if referenced:
        study_uid = request_study_uid or (next(iter(stored_studies)) if len(stored_studies) == 1 else None)
        if study_uid:
            dataset["00081190"] = {"vr": "UR", "Value": [study_url(study_uid)]}
    if failed:
        dataset["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        dataset["00081199"] = {"vr": "SQ", "Value": referenced}
    if not referenced:
        status = 409
    elif failed or any(outcome.warnings for outcome in outcomes):
        status = 202
    else:
        status = 200
    return status, dataset
