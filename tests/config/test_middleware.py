"""The async-capable WhiteNoise middleware: static files still served, everything else passed on."""

from __future__ import annotations

from pathlib import Path

import django.contrib.admin
from asgiref.sync import async_to_sync
from django.test import AsyncClient, override_settings

ADMIN_CSS = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "css" / "base.css"


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=False)
def test_static_file_is_served_under_asgi():
    async_to_sync(_served)()


async def _served():
    client = AsyncClient()  # a fresh ASGI handler: WhiteNoise scans the finders now
    response = await client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    body = b"".join(response.streaming_content)
    assert body == ADMIN_CSS.read_bytes()


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_static_file_is_served_with_autorefresh():
    response = async_to_sync(AsyncClient().get)("/static/admin/css/base.css")
    assert response.status_code == 200


@override_settings(WHITENOISE_USE_FINDERS=True)
def test_other_paths_reach_the_views():
    response = async_to_sync(AsyncClient().get)("/dicomweb/studies")
    assert response.status_code == 401  # DICOMweb answered, WhiteNoise passed it on
    response = async_to_sync(AsyncClient().get)("/static/admin/css/no-such-file.css")
    assert response.status_code == 404
