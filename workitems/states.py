"""The UPS state machine as data (PS3.4 Table CC.1.1-2), plus the Transaction UID checks.

Every (event, state) pair has one entry: the state it leads to (``None``: unchanged)
and the DICOM status the SCP answers. The Transaction UID check (0xC301) runs before
the table lookup, only where ownership matters (an IN PROGRESS workitem). HTTP statuses
are decided per transaction in ``HTTP_STATUS`` (PS3.18 chapter 11 and the conformance
statement), never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"


class Event(StrEnum):
    CREATE = "create"  # N-CREATE of a UID that already exists
    UPDATE = "update"  # N-SET
    CLAIM = "claim"  # Change State → IN PROGRESS
    SCHEDULE = "schedule"  # Change State → SCHEDULED (never allowed)
    COMPLETE = "complete"  # Change State → COMPLETED
    CANCEL = "cancel"  # Change State → CANCELED (by the owner)
    REQUEST_CANCEL = "request_cancel"  # Request Cancellation (by anyone)


# DICOM status codes (PS3.4 Annex CC.2, Tables CC.2.1-2 … CC.2.6-2)
SUCCESS = 0x0000
DUPLICATE_INSTANCE = 0x0111
MAY_NO_LONGER_BE_UPDATED = 0xC300
WRONG_TRANSACTION_UID = 0xC301
ALREADY_IN_PROGRESS = 0xC302
ONLY_SCHEDULED_BY_CREATE = 0xC303
FINAL_STATE_NOT_MET = 0xC304
NO_SUCH_WORKITEM = 0xC307
UNKNOWN_AE = 0xC308
NOT_IN_PROGRESS = 0xC310
ALREADY_COMPLETED = 0xC311
PERFORMER_UNREACHABLE = 0xC312
ALREADY_CANCELED = 0xB304  # warning
ALREADY_COMPLETED_WARNING = 0xB306  # warning
MISSING_ATTRIBUTES = 0x0120
INVALID_ATTRIBUTE_VALUE = 0x0106

MESSAGES = {
    SUCCESS: "Success",
    DUPLICATE_INSTANCE: "A workitem with this UID already exists",
    MAY_NO_LONGER_BE_UPDATED: "The UPS may no longer be updated",
    WRONG_TRANSACTION_UID: "The correct Transaction UID was not provided",
    ALREADY_IN_PROGRESS: "The UPS is already IN PROGRESS",
    ONLY_SCHEDULED_BY_CREATE: "The UPS may only become SCHEDULED via create",
    FINAL_STATE_NOT_MET: "The UPS has not met final state requirements for the requested state change",
    NO_SUCH_WORKITEM: "The workitem does not exist",
    NOT_IN_PROGRESS: "The UPS is not yet in the IN PROGRESS state",
    ALREADY_COMPLETED: "The UPS is already COMPLETED",
    PERFORMER_UNREACHABLE: "The performer cannot be contacted",
    ALREADY_CANCELED: "The UPS is already in the requested state of CANCELED",
    ALREADY_COMPLETED_WARNING: "The UPS is already in the requested state of COMPLETED",
}


@dataclass(frozen=True, slots=True)
class Transition:
    to: State | None  # None: the state does not change
    status: int = SUCCESS
    # REQUEST_CANCEL of an IN PROGRESS workitem: no state change, a Cancel Requested event.
    notify_cancel_requested: bool = False

    @property
    def failed(self) -> bool:
        return self.status >= 0xC000 or self.status in (DUPLICATE_INSTANCE,)

    @property
    def warning(self) -> bool:
        return 0xB000 <= self.status < 0xC000


S, P, X, C = State.SCHEDULED, State.IN_PROGRESS, State.CANCELED, State.COMPLETED

TRANSITIONS: dict[tuple[Event, State], Transition] = {
    # creating a UID that exists fails whatever its state
    (Event.CREATE, S): Transition(None, DUPLICATE_INSTANCE),
    (Event.CREATE, P): Transition(None, DUPLICATE_INSTANCE),
    (Event.CREATE, X): Transition(None, DUPLICATE_INSTANCE),
    (Event.CREATE, C): Transition(None, DUPLICATE_INSTANCE),
    # N-SET: SCHEDULED and (owner) IN PROGRESS only
    (Event.UPDATE, S): Transition(S),
    (Event.UPDATE, P): Transition(P),
    (Event.UPDATE, X): Transition(None, MAY_NO_LONGER_BE_UPDATED),
    (Event.UPDATE, C): Transition(None, MAY_NO_LONGER_BE_UPDATED),
    # claim: takes ownership with the request's Transaction UID
    (Event.CLAIM, S): Transition(P),
    (Event.CLAIM, P): Transition(None, ALREADY_IN_PROGRESS),
    (Event.CLAIM, X): Transition(None, MAY_NO_LONGER_BE_UPDATED),
    (Event.CLAIM, C): Transition(None, MAY_NO_LONGER_BE_UPDATED),
    # nothing returns to SCHEDULED
    (Event.SCHEDULE, S): Transition(None, ONLY_SCHEDULED_BY_CREATE),
    (Event.SCHEDULE, P): Transition(None, ONLY_SCHEDULED_BY_CREATE),
    (Event.SCHEDULE, X): Transition(None, ONLY_SCHEDULED_BY_CREATE),
    (Event.SCHEDULE, C): Transition(None, ONLY_SCHEDULED_BY_CREATE),
    # complete (owner)
    (Event.COMPLETE, S): Transition(None, NOT_IN_PROGRESS),
    (Event.COMPLETE, P): Transition(C),
    (Event.COMPLETE, X): Transition(None, MAY_NO_LONGER_BE_UPDATED),
    (Event.COMPLETE, C): Transition(None, ALREADY_COMPLETED_WARNING),
    # cancel (owner); a SCHEDULED workitem is canceled through Request Cancellation
    (Event.CANCEL, S): Transition(None, NOT_IN_PROGRESS),
    (Event.CANCEL, P): Transition(X),
    (Event.CANCEL, X): Transition(None, ALREADY_CANCELED),
    (Event.CANCEL, C): Transition(None, ALREADY_COMPLETED),
    # request cancellation (anyone): SCHEDULED is canceled by the SCP at once (CC.2.2.3);
    # IN PROGRESS goes to its owner and subscribers as a Cancel Requested event.
    (Event.REQUEST_CANCEL, S): Transition(X),
    (Event.REQUEST_CANCEL, P): Transition(None, SUCCESS, notify_cancel_requested=True),
    (Event.REQUEST_CANCEL, X): Transition(None, ALREADY_CANCELED),
    (Event.REQUEST_CANCEL, C): Transition(None, ALREADY_COMPLETED),
}

# Events that need the owner's Transaction UID when the workitem is IN PROGRESS.
OWNER_EVENTS = frozenset({Event.UPDATE, Event.COMPLETE, Event.CANCEL})


def decide(event: Event, state: State, *, given: str | None, current: str | None) -> Transition:
    """The outcome of ``event`` on a workitem in ``state``.

    ``given`` is the Transaction UID the request carries, ``current`` the workitem's.
    The ownership checks (PS3.4 CC.1.1, PS3.18 §11.6-11.7) come first:

    * an owner event on an IN PROGRESS workitem needs exactly the owner's UID;
    * N-SET of a SCHEDULED workitem must not carry one (nobody owns it yet);
    * claiming needs a Transaction UID to take ownership with.
    """
    if event in OWNER_EVENTS and state is State.IN_PROGRESS and (not given or given != current):
        return Transition(None, WRONG_TRANSACTION_UID)
    if event is Event.UPDATE and state is State.SCHEDULED and given:
        return Transition(None, WRONG_TRANSACTION_UID)
    if event is Event.CLAIM and not given:
        return Transition(None, WRONG_TRANSACTION_UID)
    return TRANSITIONS[(event, state)]


# HTTP status per (transaction, DICOM status); anything else failing is 400, success 200.
HTTP_STATUS: dict[tuple[str, int], int] = {
    ("create", SUCCESS): 201,
    ("create", DUPLICATE_INSTANCE): 409,
    ("update", SUCCESS): 200,
    ("update", MAY_NO_LONGER_BE_UPDATED): 400,  # conformance statement: COMPLETED/CANCELED → 400
    ("update", WRONG_TRANSACTION_UID): 400,
    ("change_state", SUCCESS): 200,
    ("change_state", WRONG_TRANSACTION_UID): 400,
    ("change_state", ONLY_SCHEDULED_BY_CREATE): 400,
    ("change_state", FINAL_STATE_NOT_MET): 400,
    ("change_state", NOT_IN_PROGRESS): 400,  # "not valid given the current state"
    ("change_state", MAY_NO_LONGER_BE_UPDATED): 409,
    ("change_state", ALREADY_IN_PROGRESS): 409,
    ("change_state", ALREADY_COMPLETED): 409,
    ("change_state", ALREADY_CANCELED): 200,  # warning
    ("change_state", ALREADY_COMPLETED_WARNING): 200,  # warning
    ("request_cancel", SUCCESS): 202,
    ("request_cancel", ALREADY_COMPLETED): 409,
    ("request_cancel", ALREADY_CANCELED): 202,  # warning, nothing to do
    ("request_cancel", PERFORMER_UNREACHABLE): 409,
}


def http_status(transaction: str, status: int) -> int:
    if (transaction, status) in HTTP_STATUS:
        return HTTP_STATUS[(transaction, status)]
    if status == NO_SUCH_WORKITEM:
        return 404
    return 400 if status >= 0xC000 or (status < 0xB000 and status != SUCCESS) else 200
