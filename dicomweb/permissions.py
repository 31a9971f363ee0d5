"""Role permissions from Django groups: read, write, delete, worklist.

A view names what it needs per method in ``required_permissions`` (e.g.
``{"POST": "write"}``); superusers have every role. With ``ARCHWAY_AUTH_MODE=anonymous``
everyone has every role (local demos only — the README says so loudly).
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.permissions import BasePermission

ROLE_CODENAMES = {
    "read": "archive.read_dicom",
    "write": "archive.write_dicom",
    "delete": "archive.delete_dicom",
    "worklist": "archive.manage_worklist",
}


class ArchwayPermission(BasePermission):
    message = "Your account lacks the role this request needs."

    def has_permission(self, request, view) -> bool:
        if settings.ARCHWAY_AUTH_MODE == "anonymous":
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            return False  # DRF turns this into 401 (NotAuthenticated) since no user is set
        if not hasattr(view, request.method.lower()):
            return True  # the view answers 405 for methods it does not implement
        required = getattr(view, "required_permissions", {}).get(request.method)
        if required is None:
            required = "read" if request.method in ("GET", "HEAD", "OPTIONS") else None
        if required is None:
            return False
        self.message = f"Your account lacks the '{required}' role this request needs."
        if not user.is_active:
            return False
        return user.is_superuser or ROLE_CODENAMES[required] in role_permissions(user)


# --- the roles of a user, cached -------------------------------------------------------------
# ``user.has_perm`` costs two queries (user and group permissions) on every request, a
# tenth of a small STOW's server time (profiled). Roles change rarely, so each process
# keeps them for ARCHWAY_AUTH_CACHE_SECONDS; changes made through the ORM (admin,
# management commands) clear this process's cache at once through the signals below, and
# reach other processes within that many seconds.
_cache: dict[int, tuple[float, frozenset[str]]] = {}
_cache_lock = threading.Lock()


def role_permissions(user) -> frozenset[str]:
    """The user's permissions (own and through groups) as ``app_label.codename``, cached."""
    ttl = settings.ARCHWAY_AUTH_CACHE_SECONDS
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(user.pk)
    if hit is not None and hit[0] > now:
        return hit[1]
    # One query, and nothing cached on the user object (which the token cache shares
    # between requests): ModelBackend.get_all_permissions() would memoize on it.
    rows = (
        Permission.objects.filter(Q(user=user) | Q(group__user=user))
        .values_list("content_type__app_label", "codename")
        .distinct()
    )
    permissions = frozenset(f"{app_label}.{codename}" for app_label, codename in rows)
    if ttl > 0:
        with _cache_lock:
            _cache[user.pk] = (now + ttl, permissions)
    return permissions


def clear_role_cache(*args, **kwargs) -> None:
    with _cache_lock:
        _cache.clear()


_User = get_user_model()
m2m_changed.connect(clear_role_cache, sender=_User.groups.through, dispatch_uid="archway.roles.groups")
m2m_changed.connect(
    clear_role_cache, sender=_User.user_permissions.through, dispatch_uid="archway.roles.user_perms"
)
m2m_changed.connect(clear_role_cache, sender=Group.permissions.through, dispatch_uid="archway.roles.group")
for _signal in (post_save, post_delete):
    _signal.connect(clear_role_cache, sender=_User, dispatch_uid=f"archway.roles.user.{id(_signal)}")
    _signal.connect(clear_role_cache, sender=Group, dispatch_uid=f"archway.roles.grp.{id(_signal)}")
