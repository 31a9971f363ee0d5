"""Every (event, state) pair of the UPS state table (PS3.4 Table CC.1.1-2) and the
Transaction UID checks, without HTTP."""

from __future__ import annotations

import itertools

import pytest

from workitems.states import HTTP_STATUS, TRANSITIONS, Event, State, decide, http_status

S, P, X, C = State.SCHEDULED, State.IN_PROGRESS, State.CANCELED, State.COMPLETED
OWNER = "1.2.3.9"

# (event, state) → (new state or None, DICOM status), written out independently of the module.
EXPECTED = {
    (Event.CREATE, S): (None, 0x0111),
    (Event.CREATE, P): (None, 0x0111),
    (Event.CREATE, X): (None, 0x0111),
    (Event.CREATE, C): (None, 0x0111),
    (Event.UPDATE, S): (S, 0x0000),
    (Event.UPDATE, P): (P, 0x0000),
    (Event.UPDATE, X): (None, 0xC300),
    (Event.UPDATE, C): (None, 0xC300),
    (Event.CLAIM, S): (P, 0x0000),
    (Event.CLAIM, P): (None, 0xC302),
    (Event.CLAIM, X): (None, 0xC300),
    (Event.CLAIM, C): (None, 0xC300),
    (Event.SCHEDULE, S): (None, 0xC303),
    (Event.SCHEDULE, P): (None, 0xC303),
    (Event.SCHEDULE, X): (None, 0xC303),
    (Event.SCHEDULE, C): (None, 0xC303),
    (Event.COMPLETE, S): (None, 0xC310),
    (Event.COMPLETE, P): (C, 0x0000),
    (Event.COMPLETE, X): (None, 0xC300),
    (Event.COMPLETE, C): (None, 0xB306),
    (Event.CANCEL, S): (None, 0xC310),
    (Event.CANCEL, P): (X, 0x0000),
    (Event.CANCEL, X): (None, 0xB304),
    (Event.CANCEL, C): (None, 0xC311),
    (Event.REQUEST_CANCEL, S): (X, 0x0000),
    (Event.REQUEST_CANCEL, P): (None, 0x0000),
    (Event.REQUEST_CANCEL, X): (None, 0xB304),
    (Event.REQUEST_CANCEL, C): (None, 0xC311),
}


def test_the_table_covers_every_pair():
    assert set(TRANSITIONS) == set(itertools.product(Event, State)) == set(EXPECTED)


@pytest.mark.parametrize(("event", "state"), sorted(EXPECTED, key=str))
def test_each_pair_with_the_owners_transaction_uid(event, state):
    given = None if (event is Event.UPDATE and state is S) or event is Event.REQUEST_CANCEL else OWNER
    outcome = decide(event, state, given=given, current=OWNER if state is P else "")
    assert (outcome.to, outcome.status) == EXPECTED[(event, state)]


def test_request_cancel_of_in_progress_notifies_instead_of_changing():
    outcome = decide(Event.REQUEST_CANCEL, P, given=None, current=OWNER)
    assert outcome.to is None and outcome.notify_cancel_requested and not outcome.failed


@pytest.mark.parametrize("event", [Event.UPDATE, Event.COMPLETE, Event.CANCEL])
@pytest.mark.parametrize("given", [None, "", "1.2.3.8"])
def test_owner_events_in_progress_need_the_owners_transaction_uid(event, given):
    assert decide(event, P, given=given, current=OWNER).status == 0xC301


def test_update_of_a_scheduled_workitem_must_not_carry_a_transaction_uid():
    assert decide(Event.UPDATE, S, given="1.2.3", current="").status == 0xC301


def test_claim_needs_a_transaction_uid():
    assert decide(Event.CLAIM, S, given=None, current="").status == 0xC301


def test_request_cancel_ignores_transaction_uids():
    assert decide(Event.REQUEST_CANCEL, P, given=None, current=OWNER).status == 0x0000


@pytest.mark.parametrize(
    ("transaction", "status", "http"),
    [
        ("create", 0x0000, 201),
        ("create", 0x0111, 409),
        ("update", 0xC300, 400),
        ("update", 0xC301, 400),
        ("change_state", 0xC301, 400),
        ("change_state", 0xC302, 409),
        ("change_state", 0xC300, 409),
        ("change_state", 0xC310, 400),
        ("change_state", 0xC311, 409),
        ("change_state", 0xC304, 400),
        ("change_state", 0xB304, 200),
        ("request_cancel", 0x0000, 202),
        ("request_cancel", 0xB304, 202),
        ("request_cancel", 0xC311, 409),
        ("retrieve", 0xC307, 404),
        ("subscribe", 0x0106, 400),
    ],
)
def test_http_status_per_transaction(transaction, status, http):
    assert http_status(transaction, status) == http
    assert all(code in (200, 201, 202, 400, 404, 409) for code in HTTP_STATUS.values())
