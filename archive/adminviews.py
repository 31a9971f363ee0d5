"""Admin-only pages: upload, image viewer, downloads (instance and study zip).

They run inside ``admin_site.admin_view`` (staff login, CSRF) and check the role
groups themselves, as the DICOMweb API does. Downloads are async streams: under ASGI
Django buffers a *synchronous* streaming iterator whole, so a 4 GB study zip would
take 4 GB of memory; here one chunk at a time is pulled from storage in a worker
thread, so memory stays at a few chunks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from pydicom.datadict import keyword_for_tag

from archive import audit, ingest, storage
from archive.adminimages import PRESETS_BY_NAME, WINDOW_PRESETS, image_url
from archive.models import Instance, Series, Study
from archive.status import Status

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
_DONE = object()


def _require(request: HttpRequest, role: str) -> None:
    from archive.admin import has_role

    if not has_role(request, role):
        raise PermissionDenied(f"Your account lacks the '{role}' role.")


async def _async_chunks(source: Callable[[], Iterable[bytes]]) -> AsyncIterator[bytes]:
    """Pull a blocking byte source one chunk at a time in a worker thread."""
    iterator: Iterator[bytes] = iter(await asyncio.to_thread(source))
    try:
        while (chunk := await asyncio.to_thread(next, iterator, _DONE)) is not _DONE:
            if chunk:
                yield chunk  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unnamed"


# --- downloads -------------------------------------------------------------------------------


def download_instance(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The instance exactly as stored (Part 10, its own transfer syntax)."""
    _require(request, "read")
    instance = get_object_or_404(Instance.objects.select_related("study", "series"), pk=pk)
    key = instance.blob_key

    def body() -> Iterator[bytes]:
        with storage.open_stream(key, chunk_size=CHUNK) as stream:
            yield from stream

    response = StreamingHttpResponse(_async_chunks(body), content_type="application/dicom")
    response["Content-Length"] = str(instance.size_bytes)
    response["Content-Disposition"] = f'attachment; filename="{_safe_name(instance.instance_uid)}.dcm"'
    audit.record(
        audit.Action.DOWNLOAD,
        source="admin",
        request=request,
        status=200,
        study_uid=instance.study.study_uid,
        series_uid=instance.series.series_uid,
        instance_uid=instance.instance_uid,
    )
    return response


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that hands out what was written (zipfile's output)."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        chunks, self._chunks = self._chunks, []
        if chunks:
            yield b"".join(chunks)


def zip_stream(entries: list[tuple[str, str]]) -> Iterator[bytes]:
    """A ZIP (stored, ZIP64) of ``(name, blob key)`` entries, produced as it is read.

    DICOM pixel data is mostly compressed already, so entries are stored, not deflated:
    the zip is as fast to build as the blobs are to read.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, key in entries:
            with (
                archive.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member,
                storage.open_stream(key, chunk_size=CHUNK) as stream,
            ):
                for chunk in stream:
                    member.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


def download_study(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The whole study as a zip: ``{series number}_{modality}/{instance number}_{uid}.dcm``."""
    _require(request, "read")
    study = get_object_or_404(Study, pk=pk)
    rows = (
        Instance.objects.filter(study_id=study.pk)
        .order_by("series__series_number", "series_id", "instance_number", "pk")
        .values_list(
            "series__series_number",
            "series__modality",
            "series_id",
            "instance_number",
            "instance_uid",
            "blob_key",
        )
    )
    entries = [
        (
            _safe_name("%03d_%s_%d" % (number or 0, modality or "OT", series_id))  # noqa: UP031
            + "/"
            + f"{instance_number or 0:05d}_{_safe_name(uid)}.dcm",
            key,
        )
        for number, modality, series_id, instance_number, uid, key in rows.iterator()
    ]
    if not entries:
        raise Http404("The study has no instances.")
    response = StreamingHttpResponse(
        _async_chunks(lambda: zip_stream(entries)), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="study-{_safe_name(study.study_uid)}.zip"'
    audit.record(
        audit.Action.DOWNLOAD,
        source="admin",
        request=request,
        status=200,
        study_uid=study.study_uid,
        detail=f"zip of {len(entries)} instance(s)",
    )
    return response


# --- viewer ----------------------------------------------------------------------------------


def metadata_rows(meta: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """DICOM JSON as readable (tag, keyword, VR, value) rows; bulk data and sequences summarized."""
    rows = []
    for tag_text, element in sorted(meta.items()):
        try:
            tag = int(tag_text, 16)
        except ValueError:
            continue
        vr = element.get("vr", "")
        keyword = keyword_for_tag(tag) or ("(private)" if (tag >> 16) & 1 else "")
        if "BulkDataURI" in element or "InlineBinary" in element:
            value = "(bulk data)"
        elif vr == "SQ":
            value = f"({len(element.get('Value', []))} item(s))"
        else:
            values = element.get("Value", [])
            shown = [v.get("Alphabetic", "") if isinstance(v, dict) else str(v) for v in values]
            value = "\\".join(shown)
            if len(value) > 200:
                value = value[:197] + "…"
        rows.append((f"({tag >> 16:04X},{tag & 0xFFFF:04X})", keyword, vr, value))
    return rows


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    try:
        return max(1, int(request.GET.get(name, default)))
    except (TypeError, ValueError):
        return default


def viewer(request: HttpRequest, pk: int) -> TemplateResponse:
    """One series: the current image, slice and frame navigation, window presets, metadata."""
    _require(request, "read")
    series = get_object_or_404(Series.objects.select_related("study"), pk=pk)
    instances = list(
        Instance.objects.filter(series_id=series.pk)
        .order_by("instance_number", "pk")
        .only("pk", "instance_uid", "instance_number", "number_of_frames", "rows", "columns")
    )
    if not instances:
        raise Http404("The series has no instances.")
    position = min(_int_param(request, "i", 1), len(instances))
    current = Instance.objects.get(pk=instances[position - 1].pk)
    frames = max(current.number_of_frames, 0)
    frame = min(_int_param(request, "frame", 1), max(frames, 1))
    preset = PRESETS_BY_NAME.get(request.GET.get("preset", ""), WINDOW_PRESETS[0])
    base = reverse("admin:archive_series_viewer", args=[series.pk])

    def link(i: int = position, f: int = frame, p: str = preset.name) -> str:
        return f"{base}?i={i}&frame={f}&preset={p}"

    study_uid, series_uid = series.study.study_uid, series.series_uid
    context = {
        **_admin_context(request, f"Images of {series}"),
        "series": series,
        "study": series.study,
        "instance": current,
        "position": position,
        "count": len(instances),
        "frame": frame,
        "frames": frames,
        "preset": preset,
        "presets": [(p, link(p=p.name)) for p in WINDOW_PRESETS],
        "image_url": image_url(study_uid, series_uid, current.instance_uid, frame=frame, window=preset)
        if frames
        else None,
        "prev_instance": link(i=position - 1, f=1) if position > 1 else None,
        "next_instance": link(i=position + 1, f=1) if position < len(instances) else None,
        "prev_frame": link(f=frame - 1) if frame > 1 else None,
        "next_frame": link(f=frame + 1) if frame < frames else None,
        "metadata": metadata_rows(current.metadata),
        "download_url": reverse("admin:archive_instance_download", args=[current.pk]),
        "study_url": reverse("admin:archive_study_change", args=[series.study_id]),
        "thumbs": [
            (
                index + 1,
                link(i=index + 1, f=1),
                image_url(study_uid, series_uid, inst.instance_uid, size=64)
                if inst.number_of_frames
                else None,
            )
            for index, inst in enumerate(instances[:500])
        ],
    }
    audit.record(
        audit.Action.VIEW,
        source="admin",
        request=request,
        status=200,
        study_uid=study_uid,
        series_uid=series_uid,
        instance_uid=current.instance_uid,
        detail="viewer",
    )
    return TemplateResponse(request, "admin/archive/viewer.html", context)


def _admin_context(request: HttpRequest, title: str) -> dict[str, Any]:
    from django.contrib import admin

    return {**admin.site.each_context(request), "title": title}


# --- upload ----------------------------------------------------------------------------------


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", MultipleFileInput(attrs={"accept": ".dcm,.zip,application/dicom,application/zip"})
        )
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if not data:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="DICOM files or zip files", help_text="Choose one or many .dcm files, or zip files of them."
    )


def _outcome_row(name: str, outcome: ingest.StoreOutcome) -> dict[str, str]:
    if outcome.stored:
        status, reason = ("stored", "replaced" if outcome.replaced else "")
        if outcome.warnings:
            reason = "stored with warnings: " + "; ".join(outcome.warnings)
    elif outcome.failure == Status.INSTANCE_EXISTS:
        status, reason = "already present", "an instance with this SOP Instance UID is already stored"
    else:
        status, reason = "failed", f"{outcome.failure_message} (FailureReason {outcome.failure})"
    return {
        "name": name,
        "status": status,
        "reason": reason,
        "study_uid": outcome.study_uid or "",
        "instance_uid": outcome.instance_uid or "",
    }


def _store_upload(name: str, file: Any) -> Iterator[dict[str, str]]:
    """Store one uploaded file; a zip yields one result per member file."""
    file.seek(0)
    if zipfile.is_zipfile(file):
        file.seek(0)
        try:
            archive = zipfile.ZipFile(file)
        except zipfile.BadZipFile as exc:
            yield {"name": name, "status": "failed", "reason": f"unreadable zip file: {exc}"}
            return
        with archive:
            for member in archive.infolist():
                if member.is_dir() or Path(member.filename).name.startswith("."):
                    continue
                label = f"{name} / {member.filename}"
                try:
                    with archive.open(member) as source, tempfile.SpooledTemporaryFile(8 * 2**20) as spool:
                        while chunk := source.read(CHUNK):
                            spool.write(chunk)
                        spool.seek(0)
                        yield _outcome_row(label, ingest.store(spool))
                except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                    yield {"name": label, "status": "failed", "reason": f"unreadable zip member: {exc}"}
        return
    file.seek(0)
    yield _outcome_row(name, ingest.store(file))


def upload(request: HttpRequest) -> TemplateResponse:
    """Upload DICOM files and zips through the STOW ingest path, with per-file results."""
    _require(request, "write")
    results: list[dict[str, str]] = []
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            for uploaded in form.cleaned_data["files"]:
                results.extend(_store_upload(uploaded.name, uploaded))
            counts = {
                s: sum(1 for r in results if r["status"] == s)
                for s in ("stored", "already present", "failed")
            }
            audit.record(
                audit.Action.UPLOAD,
                source="admin",
                request=request,
                status=200,
                study_uid=next((r.get("study_uid", "") for r in results if r.get("study_uid")), ""),
                detail=", ".join(f"{n} {s}" for s, n in counts.items()),
            )
    else:
        form = UploadForm()
    studies = sorted({r["study_uid"] for r in results if r.get("study_uid") and r["status"] != "failed"})
    study_links = [
        (uid, reverse("admin:archive_study_change", args=[pk]))
        for uid, pk in Study.objects.filter(study_uid__in=studies).values_list("study_uid", "pk")
    ]
    context = {
        **_admin_context(request, "Upload DICOM files"),
        "form": form,
        "results": results,
        "summary": {
            "stored": sum(1 for r in results if r["status"] == "stored"),
            "present": sum(1 for r in results if r["status"] == "already present"),
            "failed": sum(1 for r in results if r["status"] == "failed"),
        },
        "study_links": study_links,
        "max_bytes": settings.ARCHWAY_MAX_STOW_BYTES,
    }
    return TemplateResponse(request, "admin/archive/upload.html", context)


# --- OHIF viewer -----------------------------------------------------------------------------


def ohif_link(study_uid: str) -> dict[str, Any]:
    from archive.ohif import installed as ohif_installed

    installed = ohif_installed()
    return {
        "installed": installed,
        "url": f"/viewer/viewer?StudyInstanceUIDs={study_uid}",
        "hint": "The OHIF Viewer is not installed: run `make ohif` on the server.",
    }
