"""Response bodies for WADO: instances, frames and bulk data as async byte streams.

Django's ``StreamingHttpResponse`` under ASGI buffers a *synchronous* iterator whole
into a list before sending it (django/http/response.py ``__aiter__``), so a 2 GB
retrieve would take 2 GB of memory. Every body here is therefore an async iterator
that pulls one chunk at a time from a blocking source in a worker thread: memory stays
at a few chunks whatever the size. Sources must not touch the database (rows are
resolved before the response starts), because they run on arbitrary threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from dicomweb import multipart

logger = logging.getLogger(__name__)

_DONE = object()


async def async_chunks(source: Iterable[bytes] | Callable[[], Iterable[bytes]]) -> AsyncIterator[bytes]:
    """Iterate a blocking byte source in a worker thread, one chunk at a time.

    ``source`` may be a callable returning the iterable, so that opening it (a blob
    read, a transcode) also happens off the event loop.
    """
    iterator: Iterator[bytes] | None = None
    try:
        iterator = iter(await asyncio.to_thread(source)) if callable(source) else iter(source)
        while True:
            chunk = await asyncio.to_thread(next, iterator, _DONE)
            if chunk is _DONE:
                break
            if chunk:
                yield chunk  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                await asyncio.to_thread(close)
            except Exception:  # closing must never mask the real outcome
                logger.debug("closing a stream failed", exc_info=True)


def multipart_body(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """A blocking multipart/related body (wrap with ``async_chunks`` for a response)."""
    return multipart.encode_parts(parts, boundary)


def coalesce(chunks: Iterable[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Join small chunks up to ``size`` so each thread hop carries a useful amount of data."""
    pending: list[bytes] = []
    pending_size = 0
    for chunk in chunks:
        if len(chunk) >= size and not pending:
            yield chunk
            continue
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= size:
            yield b"".join(pending)
            pending, pending_size = [], 0
    if pending:
        yield b"".join(pending)


def closing_iter(iterable: Iterable[bytes], on_close: Callable[[], Any]) -> Iterator[bytes]:
    try:
        yield from iterable
    finally:
        on_close()
