"""Index queries shared by retrieve, metadata and (later) search.

Each function returns querysets over indexed columns; callers materialize rows before
streaming so no database work happens inside a response body.
"""

from __future__ import annotations

from django.db.models import Count, Max, QuerySet

from archive.models import Instance


def instances(
    study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
) -> QuerySet[Instance]:
    """Instances of a study / series / one instance, in series then instance-number order.

    The UIDs in the path must agree with each other: an instance UID under the wrong
    study or series matches nothing (404), as the resource does not exist there.
    """
    queryset = Instance.objects.filter(study__study_uid=study_uid)
    if series_uid is not None:
        queryset = queryset.filter(series__series_uid=series_uid)
    if instance_uid is not None:
        queryset = queryset.filter(instance_uid=instance_uid)
    return queryset.order_by("series_id", "instance_number", "id")


def version_tag(queryset: QuerySet[Instance]) -> tuple[int, int]:
    """(count, newest version) of the instances a resource covers: an ETag basis.

    Every change under a resource either changes the count (store, delete) or brings
    a version newer than all others (store, PUT replace), so the pair changes too.
    """
    result = queryset.order_by().aggregate(n=Count("id"), newest=Max("version"))
    return result["n"] or 0, result["newest"] or 0
