"""WebSocket routes (the ASGI ``websocket`` protocol; ``config/asgi.py`` mounts them)."""

from __future__ import annotations

from django.urls import path

from workitems.consumers import EventChannelConsumer

websocket_urlpatterns = [
    path("dicomweb/subscribers/<str:ae_title>", EventChannelConsumer.as_asgi()),
]
