"""The Celery app.

Settings come from Django's (``CELERY_`` namespace). With no ``CELERY_BROKER_URL`` the
settings module turns on ``task_always_eager``, so the embedded profile runs every task
in-process and needs no broker.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("archway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
