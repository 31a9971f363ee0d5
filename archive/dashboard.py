"""The admin index's dashboard: archive size by modality and over time, activity, workers.

Everything comes from maintained aggregates (series rows carry their instance counts
and sizes), so the page costs a handful of grouped queries whatever the archive's size.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from archive.models import AuditEvent, Series, Study

logger = logging.getLogger(__name__)

MONTHS = 12
CHART_WIDTH, CHART_HEIGHT = 600, 160


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    studies: int
    size_bytes: int
    x: float
    y: float
    width: float
    height: float

    @property
    def value_y(self) -> float:
        return max(self.y - 3, 10)


def by_modality() -> list[dict[str, Any]]:
    rows = (
        Series.objects.order_by()
        .values("modality")
        .annotate(
            studies=Count("study", distinct=True),
            series=Count("id"),
            instances=Sum("number_of_instances"),
            size_bytes=Sum("size_bytes"),
        )
        .order_by("-size_bytes")
    )
    return [{**row, "modality": row["modality"] or "(none)"} for row in rows]


def totals() -> dict[str, int]:
    series = Series.objects.aggregate(
        series=Count("id"), instances=Sum("number_of_instances"), size=Sum("size_bytes")
    )
    return {
        "studies": Study.objects.count(),
        "series": series["series"] or 0,
        "instances": series["instances"] or 0,
        "size_bytes": series["size"] or 0,
    }


def over_time(months: int = MONTHS) -> list[Bar]:
    """Studies stored per month (by arrival), as bars of an inline SVG chart."""
    today = timezone.localdate()
    index = today.year * 12 + today.month - 1 - (months - 1)
    first = dt.date(index // 12, index % 12 + 1, 1)
    rows = {
        row["month"].date() if isinstance(row["month"], dt.datetime) else row["month"]: row
        for row in Study.objects.filter(created_at__date__gte=first)
        .annotate(month=TruncMonth("created_at"))
        .order_by()
        .values("month")
        .annotate(studies=Count("id"), size_bytes=Sum("size_bytes"))
    }
    labels = []
    cursor = first
    for _ in range(months):
        labels.append(cursor)
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    peak = max((rows.get(m, {}).get("studies", 0) for m in labels), default=0) or 1
    slot = CHART_WIDTH / months
    bars = []
    for index, month in enumerate(labels):
        row = rows.get(month, {})
        count = row.get("studies", 0)
        height = (CHART_HEIGHT - 20) * count / peak
        bars.append(
            Bar(
                label=month.strftime("%b %y"),
                studies=count,
                size_bytes=row.get("size_bytes") or 0,
                x=index * slot + 4,
                y=CHART_HEIGHT - 20 - height,
                width=slot - 8,
                height=height,
            )
        )
    return bars


def recent_activity(limit: int = 12) -> list[AuditEvent]:
    """Latest audit events, without the image requests that every page view makes."""
    return list(
        AuditEvent.objects.exclude(
            Q(path__startswith="/dicomweb/wado")
            | Q(path__contains="/thumbnail")
            | Q(path__contains="/rendered")
        )
        .select_related(None)
        .order_by("-timestamp", "-id")[:limit]
    )


def workers() -> dict[str, Any]:
    """Queue lengths (Redis) and workers answering a ping; in-process when there is no broker."""
    broker = settings.CELERY_BROKER_URL
    if not broker:
        return {"mode": "in-process", "message": "Tasks run in-process (no CELERY_BROKER_URL set)."}
    state: dict[str, Any] = {"mode": "broker", "queues": [], "workers": [], "error": ""}
    try:
        from config.celery import app

        queues = (
            {"celery"}
            | {q if isinstance(q, str) else q.name for q in (app.conf.task_queues or [])}
            | {
                route.get("queue")
                for route in (app.conf.task_routes or {}).values()
                if isinstance(route, dict)
            }
        )
        if broker.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
            state["queues"] = [(name, client.llen(name)) for name in sorted(q for q in queues if q)]
        # The broker named by the settings now (not whatever the app was first configured with).
        with app.connection_for_write(broker) as connection:
            replies = app.control.inspect(timeout=1.0, connection=connection).ping() or {}
        now = timezone.now()
        state["workers"] = [(name, now) for name in sorted(replies)]
    except Exception as exc:  # the dashboard must render even when the broker is down
        logger.warning("dashboard: worker state unavailable: %s", exc)
        state["error"] = f"Broker unreachable: {exc}"
    return state


def dashboard() -> dict[str, Any]:
    return {
        "totals": totals(),
        "modalities": by_modality(),
        "bars": over_time(),
        "chart": {"width": CHART_WIDTH, "height": CHART_HEIGHT},
        "recent": recent_activity(),
        "workers": workers(),
    }
