"""The change feed: an ordered log of every create, update (PUT replace) and delete.

Modelled on the MS DICOM server's change feed (v2). Each change to an instance appends
one ``ChangeFeedEntry`` *in the transaction that changes the index*, so a reader never
sees an entry for a change that rolled back, nor an index change without its entry.

An entry's ``state`` says what became of the version it records, as the MS server
computes it from the instance's current version:

* ``current``  — this version is what the archive holds now;
* ``replaced`` — a newer version of the instance was stored since (PUT, or a new store
  after a delete);
* ``deleted``  — the instance was deleted and no version is stored.

So every change rewrites the state of the instance's earlier entries (one indexed
``UPDATE``) and appends its own: ``create``/``update`` entries start ``current``, a
``delete`` entry is ``deleted`` from the start.

Reading (``entries``) orders by ``sequence``; ``startTime`` is inclusive and ``endTime``
exclusive, and ``offset`` skips entries of that window (v2 semantics, not v1's
"sequence greater than offset").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import islice

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from archive import fastsql
from archive.indexing import Identifiers, transaction_required
from archive.models import ChangeFeedEntry

Action = ChangeFeedEntry.Action
State = ChangeFeedEntry.State

# Instance UIDs per ``IN (...)`` in the state update: under SQLite's 999-parameter limit.
_BATCH = 500


@dataclass(frozen=True, slots=True)
class Change:
    """The instance version a change feed entry is about."""

    study_uid: str
    series_uid: str
    instance_uid: str
    version: int | None


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# A fixed 63-bit key for PostgreSQL's transaction-level advisory lock (see _in_commit_order).
_COMMIT_ORDER_LOCK = 0x41524348_57415943 >> 1  # "ARCHWAYC"


def _in_commit_order() -> None:
    """Make this transaction's entries commit in sequence order (PostgreSQL).

    Sequence numbers are handed out when a row is inserted, but transactions commit in
    their own order: on PostgreSQL a store that took sequence 100 could commit after one
    that took 101, and a reader paging through the feed in between would read 101, move
    its offset past it and never see 100. Taking a transaction-level advisory lock just
    before inserting (released at commit or rollback) queues the feed writers, so they
    commit in the order they numbered their entries: a reader never sees a gap that
    fills in later. SQLite needs nothing: it has one writer at a time already. The lock
    is held only from the feed insert to the commit, the last statements of a store.
    """
    if connection.vendor == "postgresql":
        fastsql.execute("SELECT pg_advisory_xact_lock(%s)", [_COMMIT_ORDER_LOCK])


def record(action: str, changes: Sequence[Change]) -> None:
    """Append one entry per change and supersede the instances' earlier entries.

    Must run inside the ``transaction.atomic()`` block that changes the index.
    """
    transaction_required()
    if not changes:
        return
    _in_commit_order()
    deleting = action == Action.DELETE
    superseded = State.DELETED if deleting else State.REPLACED
    uids = sorted({change.instance_uid for change in changes})
    limit = connection.features.max_query_params
    for batch in _batches(uids, min(_BATCH, limit) if limit else _BATCH):
        ChangeFeedEntry.objects.filter(instance_uid__in=batch).exclude(state=superseded).update(
            state=superseded
        )
    now = timezone.now()
    ChangeFeedEntry.objects.bulk_create(
        [
            ChangeFeedEntry(
                timestamp=now,
                action=action,
                state=State.DELETED if deleting else State.CURRENT,
                study_uid=change.study_uid,
                series_uid=change.series_uid,
                instance_uid=change.instance_uid,
                version=change.version,
            )
            for change in changes
        ],
        batch_size=_BATCH,
    )


@cache
def _supersede_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    table = quote(ChangeFeedEntry._meta.db_table)
    return fastsql.placeholders(
        f"UPDATE {table} SET {quote('state')} = %s WHERE {quote('instance_uid')} = %s "
        f"AND {quote('state')} <> %s"
    )


def record_store(ids: Identifiers, version: int, *, replaced: bool) -> None:
    """The entry for one stored instance: ``update`` if it replaced a stored one (PUT).

    Runs for every stored instance, so it is two plain statements (``archive.fastsql``)
    instead of ``record()``'s querysets; the effect is the same.
    """
    transaction_required()
    _in_commit_order()
    fastsql.execute(_supersede_sql(connection.vendor), [State.REPLACED, ids.instance_uid, State.REPLACED])
    fastsql.insert(
        ChangeFeedEntry,
        {
            "timestamp": timezone.now(),
            "action": Action.UPDATE if replaced else Action.CREATE,
            "state": State.CURRENT,
            "study_uid": ids.study_uid,
            "series_uid": ids.series_uid,
            "instance_uid": ids.instance_uid,
            "version": version,
        },
    )


# --- reading ---------------------------------------------------------------------------------


def entries(
    start: datetime | None = None, end: datetime | None = None, offset: int = 0, limit: int = 100
) -> list[ChangeFeedEntry]:
    """Entries with ``start <= timestamp < end``, in sequence order, one page of them."""
    return list(_window(start, end)[offset : offset + limit])


def latest() -> ChangeFeedEntry | None:
    return ChangeFeedEntry.objects.order_by("-sequence").first()


def _window(start: datetime | None, end: datetime | None) -> QuerySet[ChangeFeedEntry]:
    queryset = ChangeFeedEntry.objects.all()
    if start is not None:
        queryset = queryset.filter(timestamp__gte=start)
    if end is not None:
        queryset = queryset.filter(timestamp__lt=end)
    return queryset.order_by("sequence")
