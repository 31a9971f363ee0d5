"""Role permissions from Django groups: read, write, delete, worklist.

A view names what it needs per method in ``required_permissions`` (e.g.
``{"POST": "write"}``); superusers have every role. With ``ARCHWAY_AUTH_MODE=anonymous``
everyone has every role (local demos only — the README says so loudly).
"""

from __future__ import annotations

from django.conf import settings
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
        return user.is_active and user.has_perm(ROLE_CODENAMES[required])
