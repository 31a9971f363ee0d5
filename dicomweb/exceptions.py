"""The one place where failures become HTTP statuses (DRF ``EXCEPTION_HANDLER``).

DRF's own handler returns ``None`` for anything it does not know (→ 500) and renders
errors with the first renderer when negotiation failed; this one always answers a
small JSON body itself, maps storage and database outages to 503, and never lets a
DICOM-level error become a 500.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from archive.errors import DicomError
from archive.storage import BlobNotFound, StorageError, StorageUnavailable
from dicomweb.multipart import BodyTooLarge, MultipartError

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service Archway depends on is unavailable; try again later."
    default_code = "service_unavailable"


def _json(detail: str, code: int, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def exception_handler(exc, context):
    if isinstance(exc, BodyTooLarge):
        return _json(str(exc), 413)
    if isinstance(exc, MultipartError):
        return _json(f"Malformed multipart body: {exc}", 400)
    if isinstance(exc, Http404 | BlobNotFound):
        return _json(str(exc) or "Not found.", 404)
    if isinstance(exc, StorageUnavailable | DatabaseError):
        logger.warning("service unavailable: %s", exc)
        return _json(
            "A service Archway depends on is unavailable; try again later.", 503, {"Retry-After": "5"}
        )
    if isinstance(exc, StorageError):
        logger.error("storage error: %s", exc)
        return _json("Blob storage error; try again later.", 503, {"Retry-After": "5"})
    if isinstance(exc, DicomError):
        return _json(exc.message, 400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a genuine bug: Django logs it and answers 500
    detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    headers = {
        name: value for name, value in response.items() if name.lower() in ("www-authenticate", "allow")
    }
    return _json(str(detail), response.status_code, headers)
