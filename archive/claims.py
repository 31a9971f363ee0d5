"""In-flight claims on SOP Instance UIDs: one store of an instance at a time.

While a store writes an instance's blob, a second store of the same SOP Instance UID
must not write one too; it is answered 45071 ("being stored by another request")
at once. The claim is a *lock*, not a row:

* **PostgreSQL:** a session advisory lock (``pg_try_advisory_lock``) on a 63-bit hash
  of the UID, held by the storing request's connection.
* **SQLite (one host):** a POSIX record lock on one byte, at the UID's hash, of a lock
  file beside the database (``fcntl.lockf``); threads of one process are told apart
  by an in-process table, because record locks belong to the process.

Either way the operating system or PostgreSQL drops the claim when its holder dies, so
a crashed store never leaves a stale claim behind (the reservation *rows* used before
stayed until ``sweep_orphans`` removed them, and cost a committed write transaction
per stored instance — on SQLite a second turn at the single writer lock). A hash
collision between two different UIDs (odds 2^-63 per concurrent pair) would only
make one of them answer 45071 and be retried.

The unique constraint on ``Instance.instance_uid`` remains what decides a race; the
claim only spares the loser the blob write and names the situation correctly.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections

from archive.errors import InstanceInFlight, StorageFailure

logger = logging.getLogger(__name__)

_local_lock = threading.Lock()
_held: set[int] = set()  # keys claimed by threads of this process
_files: dict[str, int] = {}  # lock file descriptors, open for the life of the process


def claim_key(instance_uid: str) -> int:
    """A stable 63-bit number for a UID (PostgreSQL advisory locks take a signed bigint)."""
    digest = hashlib.blake2b(instance_uid.encode("ascii", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _in_flight(instance_uid: str) -> InstanceInFlight:
    return InstanceInFlight(f"Instance {instance_uid} is being stored by another request")


@contextmanager
def claim(instance_uid: str, using: str = "default") -> Iterator[None]:
    """Hold the claim on ``instance_uid`` for the block; ``InstanceInFlight`` if taken."""
    key = claim_key(instance_uid)
    with _local_lock:
        if key in _held:
            raise _in_flight(instance_uid)
        _held.add(key)
    try:
        connection = connections[using]
        if connection.vendor == "postgresql":
            with _advisory_lock(connection, key, instance_uid):
                yield
        elif connection.vendor == "sqlite":
            with _record_lock(str(connection.settings_dict["NAME"]), key, instance_uid):
                yield
        else:
            yield  # one process only: the in-process table is the claim
    finally:
        with _local_lock:
            _held.discard(key)


@contextmanager
def _advisory_lock(connection, key: int, instance_uid: str) -> Iterator[None]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            taken = bool(cursor.fetchone()[0])
    except DatabaseError as exc:
        raise StorageFailure(f"The index is unavailable: {exc}") from exc
    if not taken:
        raise _in_flight(instance_uid)
    try:
        yield
    finally:
        # A session lock outlives transactions: it must be released here, or the pooled
        # connection would carry it to its next user. If the connection is broken the
        # session, and the lock with it, is gone anyway.
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError:
            logger.warning("could not release the claim on %s; its connection is closed", instance_uid)
            connection.close()


def _lock_fd(database: str) -> int | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    fd = _files.get(database)
    if fd is None:
        # Never closed: closing *any* descriptor of a file drops all of the process's
        # record locks on it.
        fd = os.open(f"{database}.claims", os.O_RDWR | os.O_CREAT, 0o600)
        _files[database] = fd
    return fd


@contextmanager
def _record_lock(database: str, key: int, instance_uid: str) -> Iterator[None]:
    fd = _lock_fd(database)
    if fd is None:
        yield  # an in-memory database lives in one process
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
    except (BlockingIOError, PermissionError):
        raise _in_flight(instance_uid) from None
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, key)
