"""Archway's ASGI handler for HTTP: Django's, with each request handled in one thread hop.

Django's own ``ASGIHandler`` runs the request through an async handler stack. For a
project whose middleware and views are synchronous (the admin, DRF, the ORM) that means
a chain of ``sync_to_async``/``async_to_sync`` adapters: profiled on this project, a
request made about a dozen of them, plus a fresh thread per request
(``ThreadSensitiveContext`` gives every request its own single-thread executor). The
floor cost of *any* request (a 404) was ~4 ms of server CPU on the 2-core benchmark
machine, more than the work of most searches and retrieves.

This handler keeps everything Django's does on the event loop — reading the body into
a spooled temporary file (bounded memory), sending the response, noticing a client that
went away — and runs the synchronous part (request signals, middleware, URL resolution,
view) as plain WSGI-style code in a pool of reused threads, one hop per request. That is
the execution model Django's sync stack is written for. Async byte streams
(``dicomweb.streams``) are sent from the loop as before; a *sync* streaming body (a
WhiteNoise static file, a download) is pulled one chunk at a time in the pool instead of
being consumed whole into memory, which is what Django's ASGI handler does with it.

Database connections belong to threads. Every request begins and ends with Django's
``close_old_connections`` (the request signals) *in the thread that ran it*, so a pooled
PostgreSQL connection is back in the pool before the response body is sent; response
bodies never touch the database (``dicomweb.streams``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import io
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.db import close_old_connections
from django.http import FileResponse, HttpResponse
from django.urls import set_script_prefix
from django.utils.http import parse_header_parameters

logger = logging.getLogger(__name__)

T = TypeVar("T")
_DONE = object()


# A Content-Type whose parameters are plain tokens or simple quoted strings (what DICOMweb
# clients send: ``multipart/related; type="application/dicom"; boundary=…``).
_SIMPLE_CONTENT_TYPE = re.compile(
    r"""\s*[^\s;"]+\s*(;\s*[!#$%&'+.^_`|~0-9A-Za-z-]+\s*=\s*("[^"\\;]*"|[^"\s;]*)\s*)*;?\s*"""
)
_PARAMETER = re.compile(r"""([!#$%&'+.^_`|~0-9A-Za-z-]+)\s*=\s*("[^"\\;]*"|[^"\s;]*)""")


def parse_content_type(line: str) -> tuple[str, dict[str, str]]:
    """``django.utils.http.parse_header_parameters``, without the email package for simple headers.

    Django parses every request's Content-Type with ``email.message.Message``; sampled
    under STOW load that was 3.5 % of a request's Python time. Headers of the simple
    shape above are split directly (same result: lower-cased type and parameter names,
    quotes removed); anything else (RFC 2231 ``name*=``, escapes, ``;`` inside quotes)
    still goes to Django's parser.
    """
    if not line or ";" not in line:
        return parse_header_parameters(line)
    if _SIMPLE_CONTENT_TYPE.fullmatch(line) is None:
        return parse_header_parameters(line)
    main, _, rest = line.partition(";")
    params = {}
    for name, value in _PARAMETER.findall(rest):
        params[name.lower()] = value[1:-1] if value[:1] == '"' else value
    return main.strip().lower(), params


class ArchwayASGIRequest(ASGIRequest):
    """Django's ASGI request with a quicker Content-Type parse (``parse_content_type``)."""

    def _set_content_type_params(self, meta):
        self.content_type, self.content_params = parse_content_type(meta.get("CONTENT_TYPE", ""))
        if "charset" in self.content_params:
            try:
                codecs.lookup(self.content_params["charset"])
            except LookupError:
                pass
            else:
                self.encoding = self.content_params["charset"]


class ArchwayASGIHandler(ASGIHandler):
    """HTTP only (WebSockets go to Channels, ``config.asgi``)."""

    request_class = ArchwayASGIRequest

    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.ARCHWAY_REQUEST_THREADS, thread_name_prefix="archway-request"
        )

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` in the request pool, with the caller's context variables."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.executor, context.run, func, *args)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Archway's HTTP handler got a {scope['type']!r} connection.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            await self._serve(scope, body_file, receive, send)
        finally:
            body_file.close()

    async def read_body(self, receive):
        """The request body as one in-memory file, or spooled to disk when large.

        Django's version writes every chunk into a ``SpooledTemporaryFile`` (a growing
        ``BytesIO``: copies on every resize). Here the chunks of a body up to
        ``FILE_UPLOAD_MAX_MEMORY_SIZE`` are joined once into one ``bytes`` object, which
        a ``BytesIO`` then shares without copying, and which the STOW parser searches in
        place (``dicomweb.multipart``). A larger body goes to a temporary file as soon as
        it passes the limit, so memory stays bounded whatever the size.
        """
        limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE
        chunks: list[bytes] = []
        size = 0
        spool = None
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted()
                body = message.get("body", b"")
                if body:
                    size += len(body)
                    if spool is None and size > limit:
                        spool = tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
                        spool.writelines(chunks)
                        chunks.clear()
                    if spool is not None:
                        spool.write(body)
                    else:
                        chunks.append(body)
                if not message.get("more_body", False):
                    break
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        if spool is not None:
            spool.seek(0)
            return spool
        return io.BytesIO(b"".join(chunks))

    async def _serve(self, scope, body_file, receive, send) -> None:
        response = await self._in_thread(self._handle_sync, scope, body_file)
        if not response.streaming:
            # The body is in memory and the response already closed (request_finished
            # sent) in the request thread: send it, and that is all. No disconnect
            # listener, no second thread hop: a client that went away while the view ran
            # would not have stopped the view anyway (it runs to the end in its thread).
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self.send_response(response, send)
            return

        async def respond() -> HttpResponse:
            # The client went away while we were sending: Django ignores it too.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        # As Django's handler: a disconnect while a stream is being sent cancels the
        # sending (a large stream stops reading storage for nobody).
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        responder = asyncio.create_task(respond())
        await asyncio.wait([listener, responder], return_when=asyncio.FIRST_COMPLETED)
        for task in (listener, responder):
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        response = None
        if not responder.cancelled():
            response = responder.result()
        if response is not None:
            await self._in_thread(response.close)  # request_finished and resource closers
        else:
            await self._in_thread(lambda: signals.request_finished.send(sender=self.__class__))

    def _handle_sync(self, scope, body_file) -> HttpResponse:
        """The synchronous part of a request, in one pool thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                response = error_response
            else:
                response = self.get_response(request)
                response._handler_class = self.__class__
                if isinstance(response, FileResponse):
                    response.block_size = self.chunk_size
            if not response.streaming:
                response.close()  # request_finished, here rather than in another hop
            return response
        finally:
            # The view is done with the database: give this thread's connections back
            # (a pooled PostgreSQL connection) before the body is sent, however long that
            # takes; response.close() later may run on another pool thread.
            close_old_connections()

    async def send_response(self, response: HttpResponse, send) -> None:
        if not response.streaming or response.is_async:
            await super().send_response(response, send)
            return
        # A synchronous streaming body: pull it chunk by chunk in the pool, never whole.
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": _headers(response)}
        )
        iterator: Iterator[bytes] = iter(response.streaming_content)
        try:
            while (part := await self._in_thread(next, iterator, _DONE)) is not _DONE:
                for chunk, _last in self.chunk_bytes(part):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await self._in_thread(close)
        await send({"type": "http.response.body"})


def _headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    """Response headers and cookies as ASGI wants them (as Django's handler encodes them)."""
    headers = []
    for header, value in response.items():
        headers.append(
            (
                header.encode("ascii") if isinstance(header, str) else bytes(header),
                value.encode("latin1") if isinstance(value, str) else bytes(value),
            )
        )
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers
