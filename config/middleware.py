"""Middleware of Archway's own.

``AsyncWhiteNoiseMiddleware``: WhiteNoise 6 is a sync-only middleware. Under ASGI, one
sync middleware in an otherwise async-capable stack makes Django wrap it in
``sync_to_async`` and everything below it in ``async_to_sync``, so every request hops
between the event loop and a worker thread twice before reaching the view (profiled on
small STOW requests: asgiref's adapters were among the largest items of server CPU).
This subclass is async-capable: deciding whether a path is a static file is a dict
lookup, and only serving one runs WhiteNoise's (blocking, file-opening) code in a thread.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
