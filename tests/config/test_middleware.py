"""The middleware stack runs in sync mode under ASGI, and still serves static files and views."""

from __future__ import annotations

from pathlib import Path

import django.contrib.admin
import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings
from django.utils.deprecation import MiddlewareMixin

ADMIN_CSS = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "css" / "base.css"


def _chain(handler):
    """Every layer of a loaded middleware chain, outermost first."""
    layer = handler
    while layer is not None:
        yield layer
        layer = (
            getattr(layer, "func", None)  # SyncToAsync
            or getattr(layer, "awaitable", None)  # AsyncToSync
            or getattr(layer, "__wrapped__", None)  # convert_exception_to_response
            or getattr(layer, "get_response", None)  # a middleware
        )


def test_middleware_runs_in_sync_mode_so_requests_do_not_hop_threads_per_middleware():
    layers = list(_chain(ASGIHandler()._middleware_chain))  # loaded as uvicorn's app loads it
    mixins = [layer for layer in layers if isinstance(layer, MiddlewareMixin)]
    assert len(mixins) >= 7
    # In async mode each would wrap process_request/process_response in sync_to_async.
    assert not [type(m).__name__ for m in mixins if m.async_mode]
    adapters = [
        type(layer).__name__ for layer in layers if type(layer).__name__ in ("SyncToAsync", "AsyncToSync")
    ]
    assert adapters == ["SyncToAsync", "AsyncToSync"]  # into the stack, out to the async view


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=False)
def test_static_file_is_served_under_asgi():
    client = AsyncClient()  # a fresh ASGI handler: WhiteNoise scans the finders now
    response = async_to_sync(client.get)("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"".join(response.streaming_content) == ADMIN_CSS.read_bytes()


@pytest.mark.django_db(transaction=True)  # the view audits the refused request
@override_settings(WHITENOISE_USE_FINDERS=True)
def test_other_paths_reach_the_views():
    assert async_to_sync(AsyncClient().get)("/dicomweb/studies").status_code == 401
    assert async_to_sync(AsyncClient().get)("/static/admin/css/no-such-file.css").status_code == 404
