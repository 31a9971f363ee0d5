"""WebSocket authentication with the HTTP API's credentials.

Non-browser clients send ``Authorization: Bearer <token>`` (or ``Token <token>``) in the
handshake; browsers cannot set headers on a WebSocket, so they may pass
``?access_token=<token>`` or rely on their admin session cookie. A session is accepted
only from a same-origin page (the ``Origin`` header names this host, or an origin in
``ARCHWAY_CORS_ALLOWED_ORIGINS``): otherwise any site the user visits could open the
channel with the user's cookie (cross-site WebSocket hijacking). A token that is given
but unknown refuses the handshake instead of falling back to the session.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _same_origin(scope) -> bool:
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = _header(scope, b"host") or ""
    if urlsplit(origin).netloc == host:
        return True
    return origin in settings.CORS_ALLOWED_ORIGINS


class TokenAuthMiddleware:
    """Sets ``scope["user"]`` from a token, or keeps the session user if same-origin."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = None
        authorization = _header(scope, b"authorization")
        if authorization:
            keyword, _, value = authorization.partition(" ")
            if keyword.lower() in ("bearer", "token"):
                key = value.strip()
        if key is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            key = (query.get("access_token") or [None])[0]
        scope = dict(scope)
        if key is not None:
            scope["user"] = await _user_for(key) or AnonymousUser()
        elif not _same_origin(scope):
            scope["user"] = AnonymousUser()
        return await self.inner(scope, receive, send)


def websocket_auth(inner):
    """Session (cookie) authentication underneath, token authentication on top."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
