"""Shared pieces of DICOMweb views: UID checks and absolute URLs."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from archive.uids import validate_uid


def check_uid(value: str, name: str) -> str:
    ok, reason = validate_uid(value)
    if not ok:
        raise ParseError(f"Invalid {name} {value[:80]!r}: {reason}.")
    return value


def base_url(request) -> str:
    """``…/dicomweb`` as clients reach it (ARCHWAY_BASE_URL behind a proxy)."""
    if settings.ARCHWAY_BASE_URL:
        return settings.ARCHWAY_BASE_URL + "/dicomweb"
    return request.build_absolute_uri("/dicomweb").rstrip("/")


class DicomWebView(APIView):
    """Base view: token/session auth, role permissions, DICOM negotiation (from settings)."""

    required_permissions: dict[str, str] = {}
    # What the audit trail calls a GET of this view (archive.audit); None = by method.
    audit_action: str | None = None

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        from archive.audit import record_request

        record_request(request, self, response.status_code)
        return response
