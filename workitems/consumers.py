"""The UPS event channel: a WebSocket at ``/dicomweb/subscribers/{AETitle}`` (PS3.18 §11.x).

Each open channel joins its AE's group on the channel layer; ``workitems.events``
sends every event report for that AE to the group, and this consumer writes each as
one text frame. Several channels of one AE each get every report. The client never
sends anything meaningful: frames it sends are ignored.

Authentication is the HTTP API's (``workitems.auth.TokenAuthMiddleware``): the user
needs the ``worklist`` role; otherwise the handshake is refused (HTTP 403).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from dicomweb.permissions import ROLE_CODENAMES
from workitems.events import ae_group
from workitems.services import UpsError, check_ae_title

logger = logging.getLogger(__name__)


@database_sync_to_async
def _may_watch(user) -> bool:
    if settings.ARCHWAY_AUTH_MODE == "anonymous":
        return True
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(ROLE_CODENAMES["worklist"])


class EventChannelConsumer(AsyncWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        try:
            self.ae_title = check_ae_title(unquote(self.scope["url_route"]["kwargs"]["ae_title"]))
        except UpsError:
            await self.close(code=4400)  # before accept: the handshake is refused (403)
            return
        if not await _may_watch(self.scope.get("user")):
            await self.close()
            return
        self.group = ae_group(self.ae_title)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        logger.info("event channel opened for %s", self.ae_title)

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Clients have nothing to say on this channel (PS3.18: it is server → client)."""

    async def ups_event(self, message: dict) -> None:
        await self.send(text_data=message["text"])
