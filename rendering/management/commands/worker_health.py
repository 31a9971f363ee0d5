"""``manage.py worker_health``: exit 0 only if a Celery worker answers, for each queue.

For monitoring scripts and container health checks: it pings the workers over the
broker (``celery inspect ping``) and asks which queues they consume, so a deployment
whose thumbnail workers died is noticed even while the maintenance worker still runs.
Exit status: 0 healthy, 1 no worker answered, 2 some queue has no worker, 3 the broker
cannot be reached. Without a broker (the embedded profile) tasks run in-process: 0.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


def expected_queues() -> list[str]:
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted(queues | {settings.CELERY_TASK_DEFAULT_QUEUE})


class Command(BaseCommand):
    help = "Ping the Celery workers; exit non-zero when none answers or a queue has no worker."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for answers")
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            help="a queue that must have a worker (repeatable; default: every Archway queue)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from config.celery import app

        if settings.CELERY_TASK_ALWAYS_EAGER:
            self.stdout.write("no broker configured (CELERY_BROKER_URL): tasks run in-process")
            return
        try:
            inspector = app.control.inspect(timeout=options["timeout"])
            replies = inspector.ping() or {}
            active = (inspector.active_queues() or {}) if replies else {}
        except Exception as exc:  # kombu raises transport-specific errors
            self.stderr.write(f"UNHEALTHY: the broker cannot be reached: {exc}")
            sys.exit(3)
        if not replies:
            self.stderr.write(f"UNHEALTHY: no worker answered a ping within {options['timeout']:g} s")
            sys.exit(1)
        consumed: dict[str, list[str]] = {}
        for worker, queues in active.items():
            for queue in queues:
                consumed.setdefault(queue["name"], []).append(worker)
        for worker in sorted(replies):
            self.stdout.write(f"ok: {worker}")
        missing = [q for q in options["queues"] or expected_queues() if q not in consumed]
        for queue in sorted(consumed):
            self.stdout.write(f"queue {queue}: {len(consumed[queue])} worker(s)")
        if missing:
            self.stderr.write(f"UNHEALTHY: no worker consumes {', '.join(missing)}")
            sys.exit(2)
