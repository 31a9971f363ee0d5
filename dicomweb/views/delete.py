"""Delete: ``DELETE`` a study, series or instance (the conformance statement's nonstandard
transaction). 204 when everything named is deleted, 404 when it does not exist.

The index rows go in one transaction; blobs are deleted after the commit by a Celery
task (``archive.deletion``), so the response never waits for blob storage.
"""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from archive import deletion
from dicomweb.renderers import PlainJsonRenderer
from dicomweb.views.base import DicomWebView, check_uid


class DeleteView(DicomWebView):
    renderer_classes = [PlainJsonRenderer]
    required_permissions = {"DELETE": "delete"}

    def perform_content_negotiation(self, request, force=False):
        # "There are no restrictions on the request's Accept header": never a 406.
        return super().perform_content_negotiation(request, force=True)

    def delete(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        check_uid(study_uid, "StudyInstanceUID")
        if series_uid is not None:
            check_uid(series_uid, "SeriesInstanceUID")
        if instance_uid is not None:
            check_uid(instance_uid, "SOPInstanceUID")
        try:
            if instance_uid is not None:
                deletion.delete_instance(study_uid, series_uid, instance_uid)  # type: ignore[arg-type]
            elif series_uid is not None:
                deletion.delete_series(study_uid, series_uid)
            else:
                deletion.delete_study(study_uid)
        except deletion.NothingToDelete as exc:
            raise NotFound(str(exc)) from exc
        return Response(status=204)
