"""Archway project configuration; importing it binds @shared_task to Archway's Celery app."""

from .celery import app as celery_app

__all__ = ["celery_app"]
