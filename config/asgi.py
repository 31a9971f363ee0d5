"""ASGI entry point served by uvicorn (`make run`).

Django's ASGI handler reads the whole request body into a spooled temporary file
before the view runs (memory stays bounded; large bodies spill to disk). That is why
the request-size limit has to be enforced *here*, in front of Django: otherwise a
client could fill the disk before the STOW view ever sees the request.

WebSocket connections (the worklist's event channel) are routed to Django Channels.
"""

from __future__ import annotations

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handler import ArchwayASGIHandler  # noqa: E402  (needs the app registry)

django_application = ArchwayASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.limits import BodySizeLimit  # noqa: E402  (needs settings loaded)
from workitems.auth import websocket_auth  # noqa: E402
from workitems.routing import websocket_urlpatterns  # noqa: E402

# HTTP goes to Django (one thread hop per request: config.handler); WebSockets (the UPS event channel,
# /dicomweb/subscribers/{AETitle}) go to Channels with the same token authentication.
application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(django_application),
        "websocket": websocket_auth(URLRouter(websocket_urlpatterns)),
    }
)

# Everything imported so far (Django, pydicom, numpy, codecs: ~100k objects) lives as
# long as the process. Moving it out of the cyclic garbage collector's generations
# means collections triggered by request work (DICOM JSON, ORM rows) no longer walk
# it: measured, decoding 100 studies' attributes took 2.7 ms of CPU with the default
# collector and 1.1 ms after freeze(). Standard practice for long-lived Python servers.
gc.freeze()
# A search page builds thousands of small dicts and lists (100 results of ~20 nested
# containers each); with the default threshold (700 allocations) the youngest generation
# was collected a dozen times per page. Collected every 10,000 instead: the time a
# QIDO study result adds went from ~27 to ~22 µs (HTTP, 200k-study PostgreSQL index,
# limit=1/100/200 pages at offset 1000, medians of 55 requests, alternating runs); the
# young garbage it holds a little longer is a few hundred kB.
gc.set_threshold(10_000, 10, 10)
