"""ASGI entry point served by uvicorn (`make run`).

Django's ASGI handler reads the whole request body into a spooled temporary file
before the view runs (memory stays bounded; large bodies spill to disk). That is why
the request-size limit has to be enforced *here*, in front of Django: otherwise a
client could fill the disk before the STOW view ever sees the request.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()

from config.limits import BodySizeLimit  # noqa: E402  (needs settings loaded)

application = BodySizeLimit(django_application)
