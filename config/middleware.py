"""Middleware of Archway's own.

``SyncMiddlewareChain`` (last in ``MIDDLEWARE``): makes Django run the whole middleware
stack in sync mode under ASGI. Django's built-in middlewares (``MiddlewareMixin``) are
"async-capable" only by wrapping ``process_request`` and ``process_response`` each in
``sync_to_async``: in an async stack every request hopped between the event loop and a
thread about 30 times (profiled: 33 ``sync_to_async`` calls per request, a 404 cost
6 ms of server CPU on a loaded machine). With one sync-only middleware innermost, the
handler below it is the only adapted piece: the stack runs in one thread hop, and the
views (``dicomweb.views.dispatch``) take one more to an executor thread.
"""

from __future__ import annotations


class SyncMiddlewareChain:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
