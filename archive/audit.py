"""The audit trail: one ``AuditEvent`` row per thing a person or system did to the data.

Hospitals must be able to answer "who looked at / changed / deleted this patient's
images, when, and from where". DICOMweb views record through ``record_request`` (from
``dicomweb.views.base.DicomWebView.finalize_response``) and the admin through
``record``. Recording never breaks the request it describes: a failure to write the row
is logged and swallowed (the request already happened; refusing it afterwards would
help nobody).

Admin events (corrections, deletions, uploads: rare, and each a change someone made) are
written before the admin answers. DICOMweb events — one per search, retrieve and store,
the archive's busiest traffic — are handed to a writer thread per process that inserts
them in batches every ``ARCHWAY_AUDIT_FLUSH_SECONDS`` (ATNA-style audit is asynchronous
too: syslog). Measured before: the per-request insert was ~1.5 ms of every search on
PostgreSQL (four round trips) and, on SQLite, put every read behind the single writer's
lock. The queue is drained at process exit; a crash can lose at most that last interval.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from archive import fastsql
from archive.dblock import write_lock
from archive.models import AuditEvent

logger = logging.getLogger(__name__)

Action = AuditEvent.Action


def client_address(request: Any) -> str:
    """Where the request came from (the peer address; proxies are not trusted blindly)."""
    meta = getattr(request, "META", {}) or {}
    return str(meta.get("REMOTE_ADDR") or "")[:64]


def _user_of(request: Any) -> Any:
    try:
        user = getattr(request, "user", None)
    except Exception:  # DRF authenticates lazily; bad credentials raise here
        return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _values(
    action: str,
    *,
    source: str,
    request: Any,
    user: Any,
    status: int | None,
    study_uid: str,
    series_uid: str,
    instance_uid: str,
    detail: str,
) -> dict[str, Any]:
    if user is None and request is not None:
        user = _user_of(request)
    path = ""
    method = ""
    if request is not None:
        path = request.get_full_path()[:1024]
        method = request.method or ""
    return {
        "timestamp": timezone.now(),
        "action": action,
        "source": source,
        "user": user.pk if user is not None and user.pk else None,
        "username": (user.get_username() if user is not None else "")[:150],
        "remote_addr": client_address(request) if request is not None else "",
        "method": method[:8],
        "path": path,
        "status": status,
        "study_uid": study_uid[:64],
        "series_uid": series_uid[:64],
        "instance_uid": instance_uid[:64],
        "detail": detail[:4000],
    }


def _asynchronous_commit() -> None:
    if connection.vendor == "postgresql":
        # Don't wait for the WAL flush: a crash of PostgreSQL itself can lose the last
        # fraction of a second of audit rows (never data: only this transaction is
        # asynchronous).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def record(
    action: str,
    *,
    source: str,
    request: Any = None,
    user: Any = None,
    status: int | None = None,
    study_uid: str = "",
    series_uid: str = "",
    instance_uid: str = "",
    detail: str = "",
) -> AuditEvent | None:
    """Append one event now; returns it, or None if the database refused (logged)."""
    values = _values(
        action,
        source=source,
        request=request,
        user=user,
        status=status,
        study_uid=study_uid,
        series_uid=series_uid,
        instance_uid=instance_uid,
        detail=detail,
    )
    try:
        # Plain SQL (archive.fastsql): cheaper than the ORM's insert.
        with write_lock(), transaction.atomic():
            _asynchronous_commit()
            pk = fastsql.insert(AuditEvent, values)
        event = AuditEvent(pk=pk, **{name: value for name, value in values.items() if name != "user"})
        event.user_id = values["user"]
        return event
    except DatabaseError:
        logger.warning("audit: could not record %s %s", action, values["path"], exc_info=True)
        return None


class _Writer:
    """One thread per process that inserts queued events in batches.

    Started on first use in each process (so a forked Celery or uvicorn worker gets its
    own); ``flush`` waits until everything queued before it is written. Queuing an event
    is an append to a deque and wakes nobody: the thread sleeps for the flush interval
    and then takes whatever accumulated. (It used to block on a queue and wake for every
    event; sampled with ``py-spy --gil`` under STOW load, those wake-ups and the GIL
    hand-overs they cause were a tenth of a store request's Python time.)
    """

    MAX_BATCH = 500

    def __init__(self) -> None:
        self.pending: collections.deque[dict[str, Any] | threading.Event] = collections.deque()
        self.wake = threading.Event()
        self.pid = 0
        self.lock = threading.Lock()

    def _start(self) -> None:
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    # A fork's copy of the parent's queue is not ours.
                    self.pending = collections.deque()
                    self.wake = threading.Event()
                    threading.Thread(target=self._run, name="archway-audit", daemon=True).start()
                    self.pid = os.getpid()

    def submit(self, values: dict[str, Any]) -> None:
        self._start()
        self.pending.append(values)
        if len(self.pending) >= self.MAX_BATCH:
            self.wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far; False if the writer did not finish in time."""
        if self.pid != os.getpid():
            return True  # nothing was ever queued in this process
        done = threading.Event()
        self.pending.append(done)
        self.wake.set()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            self.wake.wait(max(settings.ARCHWAY_AUDIT_FLUSH_SECONDS, 0.001))
            self.wake.clear()
            batch: list[dict[str, Any]] = []
            flushes: list[threading.Event] = []
            while self.pending:
                item = self.pending.popleft()
                if isinstance(item, threading.Event):
                    flushes.append(item)
                    continue
                batch.append(item)
                if len(batch) >= self.MAX_BATCH:
                    self._write(batch)
                    batch = []
            if batch:
                self._write(batch)
            for event in flushes:
                event.set()

    @staticmethod
    def _write(batch: list[dict[str, Any]]) -> None:
        rows = []
        for values in batch:
            row = AuditEvent(**{name: value for name, value in values.items() if name != "user"})
            row.user_id = values["user"]
            rows.append(row)
        try:
            with write_lock(), transaction.atomic():
                _asynchronous_commit()
                AuditEvent.objects.bulk_create(rows)
        except Exception:  # the writer must survive anything; the rows are logged instead
            logger.warning(
                "audit: could not record %d DICOMweb events: %s",
                len(rows),
                "; ".join(f"{v['action']} {v['path']} {v['username']} {v['status']}" for v in batch[:20]),
                exc_info=True,
            )
        finally:
            if connection.vendor != "sqlite":
                connection.close()  # a pooled PostgreSQL connection goes back to the pool


_writer = _Writer()
atexit.register(_writer.flush, 10.0)


def flush(timeout: float = 30.0) -> bool:
    """Write the DICOMweb events this process still holds (tests, shutdown)."""
    return _writer.flush(timeout)


_BY_METHOD = {"GET": Action.RETRIEVE, "HEAD": Action.RETRIEVE, "POST": Action.STORE, "PUT": Action.STORE}


def record_request(request: Any, view: Any, status: int) -> None:
    """Audit one DICOMweb request (OPTIONS, capabilities, is not audited: no data is touched)."""
    method = request.method or ""
    if method == "OPTIONS":
        return
    action = getattr(view, "audit_action", None) or _BY_METHOD.get(method)
    if method == "DELETE":
        action = Action.DELETE
    if action is None:
        return
    kwargs = getattr(view, "kwargs", {}) or {}
    params = getattr(request, "GET", {})
    details = {
        "source": "dicomweb",
        "request": request,
        "status": status,
        "study_uid": str(kwargs.get("study_uid") or params.get("studyUID") or ""),
        "series_uid": str(kwargs.get("series_uid") or params.get("seriesUID") or ""),
        "instance_uid": str(kwargs.get("instance_uid") or params.get("objectUID") or ""),
    }
    if settings.ARCHWAY_AUDIT_FLUSH_SECONDS <= 0:
        record(action, **details)
        return
    _writer.submit(_values(action, user=None, detail="", **details))
