"""The audit trail: one ``AuditEvent`` row per thing a person or system did to the data.

Hospitals must be able to answer "who looked at / changed / deleted this patient's
images, when, and from where". DICOMweb views record through ``record_request`` (from
``dicomweb.views.base.DicomWebView.finalize_response``) and the admin through
``record``. Recording never breaks the request it describes: a failure to write the row
is logged and swallowed (the request already happened; refusing it afterwards would
help nobody).
"""

from __future__ import annotations

import logging
from typing import Any

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
    """Append one event; returns it, or None if the database refused (logged)."""
    if user is None and request is not None:
        user = _user_of(request)
    path = ""
    method = ""
    if request is not None:
        path = request.get_full_path()[:1024]
        method = request.method or ""
    values = {
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
    try:
        # Plain SQL (archive.fastsql): every DICOMweb request writes one of these.
        with write_lock(), transaction.atomic():
            if connection.vendor == "postgresql":
                # Don't wait for the WAL flush: every DICOMweb request writes one row, and
                # a durable commit added a disk flush to every search and retrieve.
                # A crash of PostgreSQL itself can lose the last fraction of a second of
                # audit rows (never data: only this transaction is asynchronous).
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            pk = fastsql.insert(AuditEvent, values)
        event = AuditEvent(pk=pk, **{name: value for name, value in values.items() if name != "user"})
        event.user_id = values["user"]
        return event
    except DatabaseError:
        logger.warning("audit: could not record %s %s", action, path, exc_info=True)
        return None


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
    record(
        action,
        source="dicomweb",
        request=request,
        status=status,
        study_uid=str(kwargs.get("study_uid") or params.get("studyUID") or ""),
        series_uid=str(kwargs.get("series_uid") or params.get("seriesUID") or ""),
        instance_uid=str(kwargs.get("instance_uid") or params.get("objectUID") or ""),
    )
