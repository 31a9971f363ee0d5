"""ASGI middleware that caps request bodies before Django spools them.

A declared ``Content-Length`` over the limit is refused at once with 413; a chunked
body is counted as it arrives and, once it passes the limit, Django is told the client
went away (so it discards what it spooled) and the client gets 413.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _too_large_body(limit: int) -> bytes:
    return json.dumps(
        {"detail": f"Request body exceeds the maximum of {limit} bytes (ARCHWAY_MAX_STOW_BYTES)."}
    ).encode()


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit: int | None = None) -> None:
        self.app = app
        self._limit = limit

    @property
    def limit(self) -> int:
        return self._limit if self._limit is not None else settings.ARCHWAY_MAX_STOW_BYTES

    async def _refuse(self, send: Send) -> None:
        body = _too_large_body(self.limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(send)
                    return
        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        response_started = False

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if exceeded and not response_started:
            await self._refuse(send)
