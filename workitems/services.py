"""UPS transactions, independent of HTTP (PS3.4 Annex CC, PS3.18 chapter 11).

Each function runs one transaction on the worklist: validates against the requirement
table, asks the state table what happens, saves under a row lock, and queues the event
reports for after the commit. Failures raise ``UpsError`` carrying the DICOM status;
the HTTP layer (``workitems.views``) and, later, the admin decide how to show them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from archive.uids import validate_uid
from archive.values import normalize_name, person_name
from workitems import events, requirements
from workitems import query as wq
from workitems.models import Subscription, Workitem, WorkitemValue
from workitems.states import (
    DUPLICATE_INSTANCE,
    FINAL_STATE_NOT_MET,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTES,
    NO_SUCH_WORKITEM,
    PERFORMER_UNREACHABLE,
    SUCCESS,
    Event,
    State,
    decide,
)

logger = logging.getLogger(__name__)

UPS_PUSH_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.1"
GLOBAL_UID = "1.2.840.10008.5.1.4.34.5"
FILTERED_GLOBAL_UID = "1.2.840.10008.5.1.4.34.5.1"
SOP_INSTANCE_UID = "00080018"
SOP_CLASS_UID = "00080016"
STATE = "00741000"
TRANSACTION_UID = "00081195"
PROGRESS_SEQUENCE = "00741002"
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash


class UpsError(Exception):
    """A UPS transaction failed (or warned) with a DICOM status; ``problems`` name attributes."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.problems = list(problems or [])
        self.message = message + ("" if not self.problems else ": " + " ".join(self.problems))
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int = SUCCESS
    message: str = ""
    workitem: Workitem | None = None
    extra: dict = field(default_factory=dict)

    @property
    def warning(self) -> bool:
        return 0xB000 <= self.status < 0xC000


# --- helpers ------------------------------------------------------------------------------


def check_ae_title(ae_title: str) -> str:
    """AE titles (PS3.5 AE VR): 1-16 printable ASCII characters, no backslash, not all spaces."""
    if not _AE.match(ae_title) or not ae_title.strip():
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            f"Invalid AE title {ae_title[:40]!r}: 1 to 16 printable ASCII characters without '\\'",
        )
    return ae_title.strip()


def check_uid(value: str, name: str) -> str:
    ok, reason = validate_uid(value)
    if not ok:
        raise UpsError(INVALID_ATTRIBUTE_VALUE, f"Invalid {name} {value[:80]!r}: {reason}")
    return value


def _first(dataset: dict, key: str):
    values = (dataset.get(key) or {}).get("Value") or []
    return values[0] if values else None


def _now_dt() -> str:
    return timezone.now().strftime("%Y%m%d%H%M%S")


def public_dataset(workitem: Workitem) -> dict:
    """The workitem as clients see it: never the Transaction UID (PS3.18 §11.5)."""
    dataset = {k: v for k, v in workitem.dataset.items() if k != TRANSACTION_UID}
    dataset[STATE] = {"vr": "CS", "Value": [workitem.state]}
    return dict(sorted(dataset.items()))


def _sequence_values(dataset: dict, path: str) -> list[str]:
    from pydicom.datadict import tag_for_keyword

    sequence, keyword = path.split(".")
    items = (dataset.get(f"{tag_for_keyword(sequence):08X}") or {}).get("Value") or []
    key = f"{tag_for_keyword(keyword):08X}"
    found = []
    for item in items:
        value = _first(item, key) if isinstance(item, dict) else None
        if value not in (None, ""):
            found.append(str(value)[:64])
    return found


def _index(workitem: Workitem) -> None:
    """Bring the searchable columns and value rows up to date with the data set."""
    dataset = workitem.dataset
    name = normalize_name(person_name(dataset, 0x00100010))
    workitem.patient_name_norm = name[:324]
    words = name.replace("^", " ").replace("=", " ").split()
    workitem.patient_name_words = (" " + " ".join(words) + " ")[:400] if words else ""
    workitem.patient_id = str(_first(dataset, "00100020") or "")[:64]
    start = _first(dataset, "00404005")
    try:
        workitem.scheduled_start = wq.normalize_datetime(str(start)) if start else ""
    except ValueError:
        workitem.scheduled_start = ""
    workitem.study_uid = str(_first(dataset, "0020000D") or "")[:64]
    workitem.save()
    WorkitemValue.objects.filter(workitem=workitem).delete()
    WorkitemValue.objects.bulk_create(
        WorkitemValue(workitem=workitem, attribute=path, value=value)
        for path in wq.VALUE_PATHS
        for value in _sequence_values(dataset, path)
    )


def _lock(workitem_uid: str) -> Workitem:
    try:
        return Workitem.objects.select_for_update().get(workitem_uid=workitem_uid)
    except Workitem.DoesNotExist:
        raise UpsError(NO_SUCH_WORKITEM, f"Workitem {workitem_uid} does not exist") from None


def _subscribers(workitem: Workitem) -> list[str]:
    return list(
        Subscription.objects.filter(workitem=workitem).order_by("id").values_list("ae_title", flat=True)
    )


def _assignment_changed(dataset: dict) -> bool:
    return any((dataset.get(key) or {}).get("Value") for key in ("00404025", "00404034"))


# --- create ---------------------------------------------------------------------------------


def create(dataset: dict, workitem_uid: str | None = None) -> Workitem:
    """Create Workitem (N-CREATE): the workitem starts SCHEDULED and global subscribers hear of it."""
    in_dataset = _first(dataset, SOP_INSTANCE_UID)
    uid = workitem_uid or in_dataset
    if not uid:
        raise UpsError(
            MISSING_ATTRIBUTES,
            "The workitem UID is missing: give AffectedSOPInstanceUID in the query"
            " or SOPInstanceUID (0008,0018)",
        )
    check_uid(str(uid), "workitem UID")
    if workitem_uid and in_dataset and in_dataset != workitem_uid:
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            f"SOPInstanceUID (0008,0018) {in_dataset} differs from AffectedSOPInstanceUID {workitem_uid}",
        )
    state = _first(dataset, STATE)
    if state is not None and state != State.SCHEDULED:
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            f"ProcedureStepState (0074,1000) must be SCHEDULED when a workitem is created, not {state!r}",
        )
    problems = requirements.check(dataset, "create")
    if problems:
        raise UpsError(MISSING_ATTRIBUTES, "The workitem does not meet the create requirements", problems)
    dataset = dict(dataset)
    dataset[SOP_INSTANCE_UID] = {"vr": "UI", "Value": [uid]}
    dataset.setdefault(SOP_CLASS_UID, {"vr": "UI", "Value": [UPS_PUSH_SOP_CLASS]})
    dataset[STATE] = {"vr": "CS", "Value": [State.SCHEDULED.value]}
    dataset.pop(TRANSACTION_UID, None)
    try:
        with transaction.atomic():
            if Workitem.objects.filter(workitem_uid=uid).exists():
                raise UpsError(DUPLICATE_INSTANCE, f"Workitem {uid} already exists")
            workitem = Workitem.objects.create(workitem_uid=uid, state=State.SCHEDULED, dataset=dataset)
            _index(workitem)
            recipients = _subscribe_globals(workitem)
            reports = [events.state_report(uid, dataset, State.SCHEDULED)]
            if _assignment_changed(dataset):
                reports.append(events.assigned(uid, dataset))
            events.send_on_commit(recipients, reports)
    except IntegrityError:  # a concurrent create of the same UID won the race
        raise UpsError(DUPLICATE_INSTANCE, f"Workitem {uid} already exists") from None
    logger.info("workitem %s created", uid)
    return workitem


def _subscribe_globals(workitem: Workitem) -> list[str]:
    """Subscribe every active (not suspended) global and matching filtered-global AE."""
    recipients = []
    for registration in Subscription.objects.filter(workitem=None, suspended=False).order_by("id"):
        if registration.scope == Subscription.FILTERED:
            try:
                if not wq.matches(workitem, registration.query):
                    continue
            except wq.QueryError:
                continue
        _, created = Subscription.objects.get_or_create(
            ae_title=registration.ae_title,
            workitem=workitem,
            defaults={"scope": registration.scope, "deletion_lock": registration.deletion_lock},
        )
        if created:
            recipients.append(registration.ae_title)
    return recipients


# --- retrieve / update ------------------------------------------------------------------------


def retrieve(workitem_uid: str) -> dict:
    try:
        workitem = Workitem.objects.get(workitem_uid=workitem_uid)
    except Workitem.DoesNotExist:
        raise UpsError(NO_SUCH_WORKITEM, f"Workitem {workitem_uid} does not exist") from None
    return public_dataset(workitem)


def update(workitem_uid: str, changes: dict, transaction_uid: str | None) -> Workitem:
    """Update Workitem (N-SET): replaces the attributes sent (sequences whole), nothing else."""
    if STATE in changes:
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            "ProcedureStepState (0074,1000) cannot be set by an update:"
            " use the state or cancelrequest resources",
        )
    problems = requirements.check(changes, "update")
    if problems:
        raise UpsError(INVALID_ATTRIBUTE_VALUE, "The update does not meet the update requirements", problems)
    with transaction.atomic():
        workitem = _lock(workitem_uid)
        outcome = decide(
            Event.UPDATE, State(workitem.state), given=transaction_uid, current=workitem.transaction_uid
        )
        if outcome.failed:
            raise UpsError(outcome.status, _message(outcome.status))
        workitem.dataset = {**workitem.dataset, **changes}
        _index(workitem)
        reports = []
        if PROGRESS_SEQUENCE in changes:
            reports.append(events.progress_report(workitem_uid, workitem.dataset))
        if _assignment_changed(changes):
            reports.append(events.assigned(workitem_uid, workitem.dataset))
        events.send_on_commit(_subscribers(workitem), reports)
    return workitem


def _message(status: int) -> str:
    from workitems.states import MESSAGES

    return MESSAGES.get(status, f"DICOM status {status:04X}")


# --- change state ------------------------------------------------------------------------------

_REQUESTED = {
    State.IN_PROGRESS.value: Event.CLAIM,
    State.COMPLETED.value: Event.COMPLETE,
    State.CANCELED.value: Event.CANCEL,
    State.SCHEDULED.value: Event.SCHEDULE,
}


def change_state(workitem_uid: str, requested: str, transaction_uid: str | None) -> Outcome:
    """Change Workitem State (N-ACTION Change UPS State): claim, complete or cancel."""
    event = _REQUESTED.get(requested)
    if event is None:
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            f"ProcedureStepState (0074,1000) {requested!r} is not a state to change to"
            " (IN PROGRESS, COMPLETED or CANCELED)",
        )
    if transaction_uid:
        check_uid(transaction_uid, "TransactionUID (0008,1195)")
    with transaction.atomic():
        workitem = _lock(workitem_uid)
        outcome = decide(
            event, State(workitem.state), given=transaction_uid, current=workitem.transaction_uid
        )
        if outcome.failed:
            raise UpsError(outcome.status, _message(outcome.status))
        if outcome.to is None:  # a warning: already in the requested state
            return Outcome(outcome.status, _message(outcome.status), workitem)
        dataset = dict(workitem.dataset)
        if outcome.to is State.CANCELED:
            dataset = _with_cancellation(dataset, {})
        dataset[STATE] = {"vr": "CS", "Value": [outcome.to.value]}
        if outcome.to in (State.COMPLETED, State.CANCELED):
            column = "completed" if outcome.to is State.COMPLETED else "canceled"
            problems = requirements.check(dataset, column)
            if problems:
                raise UpsError(
                    FINAL_STATE_NOT_MET, _message(FINAL_STATE_NOT_MET) + f" ({outcome.to.value})", problems
                )
            workitem.finished_at = timezone.now()
        if outcome.to is State.IN_PROGRESS:
            workitem.transaction_uid = transaction_uid or ""
        workitem.state = outcome.to.value
        workitem.dataset = dataset
        _index(workitem)
        events.send_on_commit(
            _subscribers(workitem), [events.state_report(workitem_uid, dataset, outcome.to.value)]
        )
        if workitem.final:
            transaction.on_commit(purge_finished)
    return Outcome(SUCCESS, "", workitem)


def _with_cancellation(dataset: dict, request: dict) -> dict:
    """Fill the CANCELED final-state attributes the SCP owns (CC.2.2.3): the cancellation
    date-time, and the reason and discontinuation code a cancel request gave."""
    dataset = dict(dataset)
    items = list((dataset.get(PROGRESS_SEQUENCE) or {}).get("Value") or [{}])
    item = dict(items[0])
    item.setdefault("00404052", {"vr": "DT", "Value": [_now_dt()]})  # ProcedureStepCancellationDateTime
    if "00741238" in request:  # ReasonForCancellation
        item["00741238"] = request["00741238"]
    items[0] = item
    dataset[PROGRESS_SEQUENCE] = {"vr": "SQ", "Value": items}
    if "0074100E" in request:  # ProcedureStepDiscontinuationReasonCodeSequence
        dataset["0074100E"] = request["0074100E"]
    return dataset


# --- request cancellation ------------------------------------------------------------------------


def request_cancel(workitem_uid: str, request: dict, requesting_ae: str | None = None) -> Outcome:
    """Request Cancellation (N-ACTION Request UPS Cancel, PS3.4 CC.2.2.3).

    SCHEDULED: nobody performs it yet, so the SCP cancels it itself, passing through IN
    PROGRESS as the standard prescribes (two state reports). IN PROGRESS: the owner
    decides; the request goes to it and every subscriber as a Cancel Requested event —
    unless nobody is subscribed, when no one could hear it (0xC312).
    """
    with transaction.atomic():
        workitem = _lock(workitem_uid)
        outcome = decide(Event.REQUEST_CANCEL, State(workitem.state), given=None, current=None)
        if outcome.failed:
            raise UpsError(outcome.status, _message(outcome.status))
        if outcome.warning:
            return Outcome(outcome.status, _message(outcome.status), workitem)
        recipients = _subscribers(workitem)
        if outcome.notify_cancel_requested:
            if not recipients:
                raise UpsError(
                    PERFORMER_UNREACHABLE,
                    _message(PERFORMER_UNREACHABLE) + ": no AE is subscribed to this workitem",
                )
            events.send_on_commit(recipients, [events.cancel_requested(workitem_uid, request, requesting_ae)])
            return Outcome(SUCCESS, "", workitem)
        dataset = _with_cancellation(workitem.dataset, request)
        dataset[STATE] = {"vr": "CS", "Value": [State.CANCELED.value]}
        workitem.dataset = dataset
        workitem.state = State.CANCELED.value
        workitem.finished_at = timezone.now()
        _index(workitem)
        events.send_on_commit(
            recipients,
            [
                events.state_report(workitem_uid, dataset, State.IN_PROGRESS.value),
                events.state_report(workitem_uid, dataset, State.CANCELED.value),
            ],
        )
        transaction.on_commit(purge_finished)
    return Outcome(SUCCESS, "", workitem)


# --- subscriptions ---------------------------------------------------------------------------------


def subscribe(
    workitem_uid: str, ae_title: str, *, deletion_lock: bool = False, query: dict[str, str] | None = None
) -> Subscription:
    """Create Subscription (N-ACTION Subscribe to Receive UPS Event Reports, CC.2.3).

    For one workitem, the global worklist, or a filtered global worklist (``query``: the
    same match keys as a search). A global subscription covers every existing
    unfinished workitem and, until suspended, every new one. Each workitem subscribed
    gets an initial UPS State Report (CC.2.3.2).
    """
    ae_title = check_ae_title(ae_title)
    with transaction.atomic():
        if workitem_uid in (GLOBAL_UID, FILTERED_GLOBAL_UID):
            scope = Subscription.GLOBAL if workitem_uid == GLOBAL_UID else Subscription.FILTERED
            stored_query = dict(query or {}) if scope == Subscription.FILTERED else {}
            parsed = wq.parse({k: [v] for k, v in stored_query.items()}, paging=False)
            if scope == Subscription.FILTERED and not parsed.matches:
                raise UpsError(
                    INVALID_ATTRIBUTE_VALUE, "A filtered global subscription needs at least one match key"
                )
            registration, _ = Subscription.objects.update_or_create(
                ae_title=ae_title,
                workitem=None,
                scope=scope,
                defaults={"deletion_lock": deletion_lock, "suspended": False, "query": stored_query},
            )
            workitems = Workitem.objects.filter(parsed.q).exclude(state__in=(State.COMPLETED, State.CANCELED))
            reports = []
            for workitem in workitems.order_by("id"):
                Subscription.objects.get_or_create(
                    ae_title=ae_title,
                    workitem=workitem,
                    defaults={"scope": scope, "deletion_lock": deletion_lock},
                )
                reports.append(events.state_report(workitem.workitem_uid, workitem.dataset, workitem.state))
            events.send_on_commit([ae_title], reports)
            return registration
        check_uid(workitem_uid, "workitem UID")
        workitem = _lock(workitem_uid)
        subscription, _ = Subscription.objects.update_or_create(
            ae_title=ae_title,
            workitem=workitem,
            defaults={"scope": Subscription.WORKITEM, "deletion_lock": deletion_lock},
        )
        events.send_on_commit(
            [ae_title], [events.state_report(workitem_uid, workitem.dataset, workitem.state)]
        )
    return subscription


def unsubscribe(workitem_uid: str, ae_title: str) -> int:
    """Delete Subscription (N-ACTION Unsubscribe, CC.2.3.3); returns how many rows went.

    From the global worklist: the AE leaves every subscription it has (global and each
    workitem's). From the filtered global worklist: the filtered registration and the
    workitem subscriptions it made. From one workitem: that one. Releasing a deletion
    lock lets a finished workitem go.
    """
    ae_title = check_ae_title(ae_title)
    with transaction.atomic():
        rows = Subscription.objects.filter(ae_title=ae_title)
        if workitem_uid == GLOBAL_UID:
            pass
        elif workitem_uid == FILTERED_GLOBAL_UID:
            rows = rows.filter(scope=Subscription.FILTERED)
        else:
            check_uid(workitem_uid, "workitem UID")
            workitem = _lock(workitem_uid)
            rows = rows.filter(workitem=workitem)
        deleted, _ = rows.delete()
        transaction.on_commit(purge_finished)
    return deleted


def suspend(workitem_uid: str, ae_title: str) -> Subscription:
    """Suspend Global Subscription (CC.2.3.4): no new workitems for this AE; the workitem
    subscriptions it already has stay."""
    ae_title = check_ae_title(ae_title)
    if workitem_uid not in (GLOBAL_UID, FILTERED_GLOBAL_UID):
        raise UpsError(
            INVALID_ATTRIBUTE_VALUE,
            f"Only a global subscription can be suspended ({GLOBAL_UID} or {FILTERED_GLOBAL_UID})",
        )
    scope = Subscription.GLOBAL if workitem_uid == GLOBAL_UID else Subscription.FILTERED
    with transaction.atomic():
        registration = (
            Subscription.objects.select_for_update()
            .filter(ae_title=ae_title, workitem=None, scope=scope)
            .first()
        )
        if registration is None:
            raise UpsError(NO_SUCH_WORKITEM, f"{ae_title} has no {scope} subscription to suspend")
        registration.suspended = True
        registration.save(update_fields=["suspended"])
    return registration


# --- retention -----------------------------------------------------------------------------------------


def purge_finished() -> int:
    """Delete COMPLETED/CANCELED workitems past ``ARCHWAY_UPS_RETENTION_SECONDS`` that no
    subscriber holds a deletion lock on (PS3.4 CC.2.3.1: a deletion lock keeps the
    instance until that subscriber unsubscribes)."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.ARCHWAY_UPS_RETENTION_SECONDS)
    doomed = (
        Workitem.objects.filter(state__in=(State.COMPLETED, State.CANCELED), finished_at__lte=cutoff)
        .exclude(subscriptions__deletion_lock=True)
        .values_list("pk", flat=True)
    )
    deleted, _ = Workitem.objects.filter(pk__in=list(doomed)).delete()
    return deleted
