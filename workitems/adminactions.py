"""The worklist actions the admin offers, as UPS transactions (never around them).

Staff act on a workitem as one more UPS performer: *Claim* takes ownership with a
Transaction UID the admin generates, *Complete* and *Cancel* use that UID, *Request
cancellation* is what any SCU may ask. Every step is a ``workitems.services`` call, so
the state table (``workitems.states``), the requirement tables
(``workitems.requirements``) and the event reports apply exactly as for UPS-RS clients.

Ownership needs no extra column: the admin's Transaction UIDs come from a UID sub-root
only Archway issues (``ADMIN_TRANSACTION_PREFIX``), followed by ~113 random bits
(pydicom's ``generate_uid``). The prefix says "the admin is the performer"; the random
part is still the secret lock, and it never leaves the server. A workitem claimed by an
external performer cannot be completed or canceled here, only asked to cancel.

Multi-step actions (fill the final-state attributes, then change state) run in one
database transaction: if the state change is refused, the filled attributes roll back
and no event report goes out (reports are sent on commit).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from pydicom.datadict import keyword_for_tag
from pydicom.uid import generate_uid

from archive.uids import ARCHWAY_UID_PREFIX
from workitems import services
from workitems.models import Subscription, Workitem
from workitems.services import TRANSACTION_UID, UpsError
from workitems.states import MESSAGES, NO_SUCH_WORKITEM, SUCCESS, Event, State, decide, http_status

# Sub-root of Archway's UID root for the admin's Transaction UIDs. Taken: ".8." (benchmark
# data, seed_index) and ".9." (the tests' UIDs, also their UPS-RS Transaction UIDs);
# archive.uids.generate_uid appends one number to the root, never "7.".
ADMIN_TRANSACTION_PREFIX = ARCHWAY_UID_PREFIX + "7."

PERFORMED_SEQUENCE = "00741216"  # UnifiedProcedureStepPerformedProcedureSequence
PERFORMED_START = "00404050"  # PerformedProcedureStepStartDateTime
PERFORMED_END = "00404051"  # PerformedProcedureStepEndDateTime
PERFORMED_EMPTY_SEQUENCES = (
    "00404028",  # PerformedStationNameCodeSequence (Type 2 at COMPLETED)
    "00404019",  # PerformedWorkitemCodeSequence (Type 2)
    "00404033",  # OutputInformationSequence (Type 2)
)
PROGRESS_SEQUENCE = services.PROGRESS_SEQUENCE
REASON_FOR_CANCELLATION = "00741238"  # LT
CONTACT_DISPLAY_NAME = "0074100C"  # LO

CLAIM, COMPLETE, CANCEL, REQUEST_CANCEL = "claim", "complete", "cancel", "request-cancel"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    label: str
    event: Event
    transaction: str  # the PS3.18 transaction, for the HTTP status shown and audited
    confirm: str = ""  # non-empty: a confirmation page first, saying this
    reason: bool = False  # the confirmation page asks for a reason for cancellation


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(CLAIM, "Claim", Event.CLAIM, "change_state"),
        Action(
            COMPLETE,
            "Complete",
            Event.COMPLETE,
            "change_state",
            confirm="The workitem becomes COMPLETED. This is final: it cannot be reopened.",
        ),
        Action(
            CANCEL,
            "Cancel",
            Event.CANCEL,
            "change_state",
            confirm="The workitem becomes CANCELED. This is final: it cannot be reopened.",
            reason=True,
        ),
        Action(
            REQUEST_CANCEL,
            "Request cancellation",
            Event.REQUEST_CANCEL,
            "request_cancel",
            confirm=(
                "A SCHEDULED workitem is canceled at once. For an IN PROGRESS workitem, its "
                "performer and subscribers are asked to cancel it (a Cancel Requested event); "
                "the performer decides."
            ),
            reason=True,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Result:
    """What an action did, for the admin message and the audit row."""

    level: str  # "success" | "warning" | "error"
    message: str
    status: int = SUCCESS  # DICOM status
    http: int = 200  # what UPS-RS would have answered


def admin_owns(workitem: Workitem) -> bool:
    """Is the admin the performer of this IN PROGRESS workitem (it claimed it here)?"""
    return workitem.state == State.IN_PROGRESS and workitem.transaction_uid.startswith(
        ADMIN_TRANSACTION_PREFIX
    )


def _given(workitem: Workitem, event: Event) -> str | None:
    """The Transaction UID the admin would send for ``event``: only ever its own."""
    if event is Event.CLAIM:
        return ADMIN_TRANSACTION_PREFIX + "0"  # any UID: claiming only needs one
    if event in (Event.COMPLETE, Event.CANCEL) and admin_owns(workitem):
        return workitem.transaction_uid
    return None


def available(workitem: Workitem) -> list[Action]:
    """The actions the state table allows now (a warning or failure hides the button).

    For an IN PROGRESS workitem the admin owns, *Cancel* replaces *Request cancellation*
    (asking oneself to cancel would only notify the subscribers).
    """
    state = State(workitem.state)
    found = []
    for action in ACTIONS.values():
        outcome = decide(
            action.event, state, given=_given(workitem, action.event), current=workitem.transaction_uid
        )
        if outcome.failed or outcome.warning:
            continue
        if action.event is Event.REQUEST_CANCEL and admin_owns(workitem):
            continue
        found.append(action)
    return found


def _now_dt() -> str:
    # The same clock and form as the service's own date-times (ProcedureStepCancellationDateTime).
    return timezone.now().strftime("%Y%m%d%H%M%S")


def _performed_item(dataset: dict) -> dict:
    items = (dataset.get(PERFORMED_SEQUENCE) or {}).get("Value") or [{}]
    return dict(items[0]) if isinstance(items[0], dict) else {}


def _has_value(element: dict | None) -> bool:
    return bool((element or {}).get("Value"))


def completion_fills(dataset: dict, now: str) -> dict:
    """The N-SET that gives ``dataset`` what COMPLETED needs and it lacks ({} if nothing).

    The Performed Procedure Sequence item keeps what the performer recorded; missing
    start/end date-times become ``now`` (the start normally came at claim), missing
    Type 2 sequences are sent empty. The sequence is replaced whole, as N-SET does.
    """
    item = _performed_item(dataset)
    before = dict(item)
    for key in (PERFORMED_START, PERFORMED_END):
        if not _has_value(item.get(key)):
            item[key] = {"vr": "DT", "Value": [now]}
    for key in PERFORMED_EMPTY_SEQUENCES:
        item.setdefault(key, {"vr": "SQ"})
    if item == before and PERFORMED_SEQUENCE in dataset:
        return {}
    return {PERFORMED_SEQUENCE: {"vr": "SQ", "Value": [dict(sorted(item.items()))]}}


def _reason_update(dataset: dict, reason: str) -> dict:
    """An N-SET putting ``reason`` into the progress information item (kept otherwise)."""
    items = list((dataset.get(PROGRESS_SEQUENCE) or {}).get("Value") or [{}])
    item = dict(items[0]) if isinstance(items[0], dict) else {}
    item[REASON_FOR_CANCELLATION] = {"vr": "LT", "Value": [reason]}
    items[0] = dict(sorted(item.items()))
    return {PROGRESS_SEQUENCE: {"vr": "SQ", "Value": items}}


def _failure(action: Action, exc: UpsError) -> Result:
    http = http_status(action.transaction, exc.status)
    return Result(
        "error",
        f"{action.label} failed: {exc.message} (DICOM status 0x{exc.status:04X}, HTTP {http}).",
        exc.status,
        http,
    )


def _warning(action: Action, outcome: services.Outcome) -> Result:
    http = http_status(action.transaction, outcome.status)
    return Result(
        "warning",
        f"{action.label}: {outcome.message or MESSAGES.get(outcome.status, '')} "
        f"(DICOM status 0x{outcome.status:04X}, HTTP {http}); nothing changed.",
        outcome.status,
        http,
    )


def perform(action_name: str, workitem: Workitem, *, reason: str = "", contact: str = "") -> Result:
    """Run one admin action on ``workitem``; never raises UpsError (it becomes an error Result)."""
    action = ACTIONS[action_name]
    uid = workitem.workitem_uid
    try:
        if action.name == CLAIM:
            outcome = _claim(uid)
        elif action.name == COMPLETE:
            outcome = _finish(uid, State.COMPLETED, "")
        elif action.name == CANCEL:
            outcome = _finish(uid, State.CANCELED, reason)
        else:
            outcome = _request_cancel(uid, reason, contact)
    except UpsError as exc:
        return _failure(action, exc)
    if outcome.warning:
        return _warning(action, outcome)
    http = http_status(action.transaction, outcome.status)
    state = outcome.workitem.state if outcome.workitem else workitem.state
    if action.name == REQUEST_CANCEL and state == State.IN_PROGRESS:
        told = Subscription.objects.filter(workitem__workitem_uid=uid).count()
        return Result(
            "success",
            f"Cancellation requested: {told} subscriber(s) were sent a Cancel Requested event "
            f"(HTTP {http}). The workitem stays IN PROGRESS until its performer cancels it.",
            outcome.status,
            http,
        )
    return Result("success", f"{action.label}: the workitem is now {state}.", outcome.status, http)


def _claim(uid: str) -> services.Outcome:
    """SCHEDULED → IN PROGRESS with a new admin Transaction UID; the start date-time of the
    performed procedure is recorded now, by the new owner, in the same transaction."""
    transaction_uid = generate_uid(prefix=ADMIN_TRANSACTION_PREFIX)
    with transaction.atomic():
        outcome = services.change_state(uid, State.IN_PROGRESS.value, transaction_uid)
        dataset = outcome.workitem.dataset if outcome.workitem else {}
        item = _performed_item(dataset)
        if not _has_value(item.get(PERFORMED_START)):
            item[PERFORMED_START] = {"vr": "DT", "Value": [_now_dt()]}
            changes = {PERFORMED_SEQUENCE: {"vr": "SQ", "Value": [dict(sorted(item.items()))]}}
            workitem = services.update(uid, changes, transaction_uid)
            outcome = services.Outcome(outcome.status, outcome.message, workitem)
    return outcome


def _finish(uid: str, to: State, reason: str) -> services.Outcome:
    """IN PROGRESS → COMPLETED/CANCELED as the owner: fill what the final state needs
    through N-SET, then change state; all or nothing."""
    with transaction.atomic():
        workitem = Workitem.objects.select_for_update().filter(workitem_uid=uid).first()
        if workitem is None:
            raise UpsError(NO_SUCH_WORKITEM, f"Workitem {uid} does not exist")
        if not admin_owns(workitem):
            # Only the admin's own lock is ever sent; the service answers as it would anyone.
            return services.change_state(uid, to.value, None)
        transaction_uid = workitem.transaction_uid
        changes: dict[str, Any] = {}
        if to is State.COMPLETED:
            changes = completion_fills(workitem.dataset, _now_dt())
        elif reason:
            changes = _reason_update(workitem.dataset, reason)
        if changes:
            services.update(uid, changes, transaction_uid)
        return services.change_state(uid, to.value, transaction_uid)


def _request_cancel(uid: str, reason: str, contact: str) -> services.Outcome:
    request: dict[str, Any] = {}
    if reason:
        request[REASON_FOR_CANCELLATION] = {"vr": "LT", "Value": [reason]}
    if contact:
        request[CONTACT_DISPLAY_NAME] = {"vr": "LO", "Value": [contact[:64]]}
    return services.request_cancel(uid, request)


# --- display helpers -----------------------------------------------------------------------------


def first_value(dataset: dict, key: str) -> Any:
    values = (dataset.get(key) or {}).get("Value") or []
    return values[0] if values else None


def readable_datetime(text: str) -> str:
    """``20240301090000.000000`` (or a DT value) → ``2024-03-01 09:00`` (seconds when set)."""
    digits = (text or "").split(".")[0].split("+")[0]
    if len(digits) < 8 or not digits.isdigit():
        return text or ""
    shown = f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    if len(digits) >= 12:
        shown += f" {digits[8:10]}:{digits[10:12]}"
        if len(digits) >= 14 and digits[12:14] != "00":
            shown += f":{digits[12:14]}"
    return shown


def person(value: Any) -> str:
    """A PN value as people write it: ``Doe^John`` → ``Doe, John``."""
    text = value.get("Alphabetic", "") if isinstance(value, dict) else str(value or "")
    family, _, rest = text.partition("^")
    rest = " ".join(part for part in rest.split("^") if part)
    return f"{family}, {rest}" if family and rest else (family or rest)


def code_text(dataset: dict, key: str) -> str:
    """The first item of a code sequence as ``meaning (value)``, or one of them."""
    item = first_value(dataset, key)
    if not isinstance(item, dict):
        return ""
    meaning = str(first_value(item, "00080104") or "")
    value = str(first_value(item, "00080100") or "")
    if meaning and value and meaning != value:
        return f"{meaning} ({value})"
    return meaning or value


def _value_text(element: dict) -> str:
    if "BulkDataURI" in element or "InlineBinary" in element:
        return "(bulk data)"
    values = element.get("Value") or []
    vr = element.get("vr", "")
    shown = [person(v) if vr == "PN" else str(v) for v in values]
    if vr in ("DT", "DA"):
        shown = [readable_datetime(v) for v in shown]
    text = "\\".join(shown)
    return text if len(text) <= 300 else text[:297] + "…"


def dataset_rows(dataset: dict, depth: int = 0) -> Iterator[tuple[str, str, str, str, int]]:
    """DICOM JSON as (tag, keyword, VR, value, depth) rows; sequence items indented below
    their sequence. The Transaction UID is skipped at every level: it is the owner's lock."""
    for tag_text, element in sorted(dataset.items()):
        if tag_text.upper() == TRANSACTION_UID or not isinstance(element, dict):
            continue
        try:
            tag = int(tag_text, 16)
        except ValueError:
            continue
        keyword = keyword_for_tag(tag) or ("(private)" if (tag >> 16) & 1 else "")
        label = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = element.get("vr", "")
        if vr == "SQ":
            items = element.get("Value") or []
            yield label, keyword, vr, f"{len(items)} item(s)", depth
            for number, item in enumerate(items, start=1):
                yield "", f"item {number}", "", "", depth + 1
                if isinstance(item, dict):
                    yield from dataset_rows(item, depth + 2)
        else:
            yield label, keyword, vr, _value_text(element), depth
