"""Rendered resources (PS3.18 §10.4.1.1.3) and thumbnails (Supplement 203).

``…/rendered`` on a study or series answers ``multipart/related`` with the first frame
of each instance that has pixel data, one image per part (``Content-Location`` names
the instance); a single-part Accept (``image/jpeg``) gets the representative image
instead (see ``rendering.thumbnails``). On an instance it is frame 1, on
``…/frames/{n}/rendered`` frame *n* (a list of frames needs a multipart Accept).

``…/thumbnail`` is always one image: the representative frame of the representative
instance, 128x128 unless ``viewport`` says otherwise; common sizes are cached as derived
objects in blob storage (made by the worker after a store, or on the first request).
The ``Archway-Thumbnail`` header says whether it came from storage (``stored``) or was
rendered for this request (``rendered``).

Instances without pixel data (SR, PDF, video in MPEG, …) have nothing to render: 404.
A frame that cannot be decoded here (no codec installed): 406.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse
from django.utils.http import parse_etags, quote_etag
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError

from archive import query
from dicomweb import multipart, renderparams
from dicomweb.negotiation import (
    RENDERED_DESCRIPTORS,
    RENDERED_MULTIPART_DESCRIPTORS,
    THUMBNAIL_DESCRIPTORS,
    Choice,
)
from dicomweb.views.base import DicomWebView, base_url
from dicomweb.views.retrieve import Row, _check_path, parse_frame_list, resolve_rows, stream_response
from rendering import thumbnails
from rendering.images import RenderParams, Viewport, ViewportError, render
from rendering.pixels import RenderError

logger = logging.getLogger(__name__)


def _has_pixels(row: Row) -> bool:
    return row.frame_table.get("kind", "none") != "none" and _frame_count(row) > 0


def _frame_count(row: Row) -> int:
    return int(row.frame_table.get("number_of_frames", 0) or 0)


def _render(row: Row, frame_number: int, params: RenderParams, annotation: tuple[str, ...]) -> bytes:
    if annotation:
        params = _with_annotation(params, row, frame_number, annotation)
    try:
        return render(row.blob_key, frame_number - 1, params, size=row.size)
    except ViewportError as exc:
        raise ParseError(f"viewport: {exc}") from exc
    except RenderError as exc:
        raise NotAcceptable(f"Instance {row.instance_uid} cannot be rendered: {exc}") from exc


# --- annotation text ---------------------------------------------------------------------------


def _text(metadata: dict[str, Any], tag: str) -> str:
    element = metadata.get(tag) or {}
    values = element.get("Value") or []
    if not values:
        return ""
    value = values[0]
    if isinstance(value, dict):  # PN: {"Alphabetic": "Doe^John"}
        value = value.get("Alphabetic") or value.get("Ideographic") or ""
        value = " ".join(part for part in str(value).replace("^", " ").split())
    return str(value)


def _with_annotation(
    params: RenderParams, row: Row, frame_number: int, kinds: tuple[str, ...]
) -> RenderParams:
    """Burned-in text: ``patient`` (name, ID, birth date, sex), ``technique`` (modality,
    study date, series, frame, window)."""
    from dataclasses import replace

    meta = row.metadata or {}
    lines: list[str] = []
    if "patient" in kinds:
        lines.append(_text(meta, "00100010") or "(no name)")
        details = [_text(meta, "00100020"), _text(meta, "00100030"), _text(meta, "00100040")]
        lines.append(" ".join(d for d in details if d))
    if "technique" in kinds:
        lines.append(" ".join(d for d in (_text(meta, "00080060"), _text(meta, "00080020")) if d))
        if description := _text(meta, "0008103E"):
            lines.append(description)
        window = params.window
        center, width = (
            (window.center, window.width) if window else (_text(meta, "00281050"), _text(meta, "00281051"))
        )
        frame_line = f"Frame {frame_number}/{_frame_count(row)}"
        if center != "" and width != "":
            frame_line += f"  C {float(center):g} W {float(width):g}"
        lines.append(frame_line)
    return replace(params, annotation=tuple(line for line in lines if line))


# --- rendered -----------------------------------------------------------------------------------


class RenderedView(DicomWebView):
    query_parameters = ("accept", "quality", "viewport", "window", "annotation", "charset")

    def accept_descriptors(self, request):
        if "frames" in self.kwargs:
            return (*RENDERED_DESCRIPTORS, *RENDERED_MULTIPART_DESCRIPTORS[: len(RENDERED_DESCRIPTORS)])
        if self.kwargs.get("instance_uid"):
            return RENDERED_DESCRIPTORS
        return RENDERED_MULTIPART_DESCRIPTORS

    def get(
        self,
        request,
        study_uid: str,
        series_uid: str | None = None,
        instance_uid: str | None = None,
        frames: str | None = None,
    ):
        _check_path(study_uid, series_uid, instance_uid)
        choice: Choice = request.dicom_choice
        params, annotation = renderparams.rendered_params(request.query_params, choice.media_type)
        if instance_uid is not None:
            return self._instance(
                request, choice, params, annotation, study_uid, series_uid, instance_uid, frames
            )
        if not choice.multipart:
            source = (
                thumbnails.series_source(study_uid, series_uid)
                if series_uid
                else thumbnails.study_source(study_uid)
            )
            if source is None:
                resolve_rows(study_uid, series_uid, None)  # 404 if the resource itself is missing
                raise NotFound("No instance here has pixel data to render.")
            (row,) = resolve_rows(
                study_uid, source.series_uid, source.instance_uid, metadata=bool(annotation)
            )
            body = _render(row, source.representative_frame, params, annotation)
            return HttpResponse(body, content_type=choice.media_type)
        rows = [
            row
            for row in resolve_rows(study_uid, series_uid, None, metadata=bool(annotation))
            if _has_pixels(row)
        ]
        if not rows:
            raise NotFound("No instance here has pixel data to render.")
        return self._multipart(request, choice, [(row, 1) for row in rows], params, annotation)

    def _instance(self, request, choice, params, annotation, study_uid, series_uid, instance_uid, frames):
        (row,) = resolve_rows(study_uid, series_uid, instance_uid, metadata=bool(annotation))
        if not _has_pixels(row):
            raise NotFound(f"Instance {instance_uid} has no pixel data to render.")
        numbers = parse_frame_list(frames) if frames is not None else [1]
        beyond = [n for n in numbers if n > _frame_count(row)]
        if beyond:
            raise NotFound(
                f"Frame(s) {', '.join(map(str, beyond))} out of range: "
                f"the instance has {_frame_count(row)} frame(s)."
            )
        if choice.multipart:
            return self._multipart(request, choice, [(row, n) for n in numbers], params, annotation)
        if len(numbers) != 1:
            raise NotAcceptable(
                f'One image holds one frame; ask for multipart/related; type="{choice.media_type}".'
            )
        return HttpResponse(_render(row, numbers[0], params, annotation), content_type=choice.media_type)

    @staticmethod
    def _multipart(request, choice: Choice, items: list[tuple[Row, int]], params, annotation):
        boundary = multipart.new_boundary()
        root = base_url(request)
        many_frames = len({row.instance_uid for row, _ in items}) == 1 and len(items) > 1

        def parts() -> Iterator[tuple[dict[str, str], list[bytes]]]:
            for row, number in items:
                try:
                    data = _render(row, number, params, annotation)
                except (NotAcceptable, ParseError) as exc:
                    # Rendered before the part header is written: a failure skips the part.
                    logger.warning("rendered: skipping %s frame %d: %s", row.instance_uid, number, exc)
                    continue
                location = (
                    f"{row.url(root)}/frames/{number}/rendered"
                    if many_frames
                    else f"{row.url(root)}/rendered"
                )
                yield {"Content-Type": choice.media_type, "Content-Location": location}, [data]

        return stream_response(
            lambda: multipart.encode_parts(parts(), boundary),
            f'multipart/related; type="{choice.media_type}"; boundary={boundary}',
        )


# --- thumbnails ---------------------------------------------------------------------------------

# Patient images: only the requesting client may keep them, and it must ask again (a deleted
# instance must stop showing), which costs a 304 when nothing changed.
THUMBNAIL_CACHE_CONTROL = "private, no-cache"


class ThumbnailView(DicomWebView):
    accept_descriptors = THUMBNAIL_DESCRIPTORS
    query_parameters = ("accept", "viewport", "charset")

    def get(
        self,
        request,
        study_uid: str,
        series_uid: str | None = None,
        instance_uid: str | None = None,
        frames: str | None = None,
    ):
        _check_path(study_uid, series_uid, instance_uid)
        choice: Choice = request.dicom_choice
        renderparams.charset(request.query_params)
        viewport = renderparams.viewport(
            request.query_params, default=Viewport(thumbnails.DEFAULT_SIZE, thumbnails.DEFAULT_SIZE)
        )
        if instance_uid is not None:
            source = thumbnails.instance_source(study_uid, series_uid, instance_uid)
        elif series_uid is not None:
            source = thumbnails.series_source(study_uid, series_uid)
        else:
            source = thumbnails.study_source(study_uid)
        if source is None:
            if not query.instances(study_uid, series_uid, instance_uid).exists():
                resolve_rows(study_uid, series_uid, instance_uid)  # raises the precise 404
            raise NotFound("Nothing here has pixel data to make a thumbnail of.")
        frame_number = source.representative_frame
        if frames is not None:
            numbers = parse_frame_list(frames)
            if len(numbers) != 1:
                raise ParseError("A thumbnail is of one frame.")
            frame_number = numbers[0]
            if frame_number > source.number_of_frames:
                raise NotFound(
                    f"Frame {frame_number} out of range: the instance has {source.number_of_frames} frame(s)."
                )
        assert viewport is not None
        etag = None
        if thumbnails.cacheable(viewport):
            # A stored thumbnail's bytes change only with the instance's version (a PUT or
            # a correction makes a new one): viewers revalidate and get 304 without a read.
            etag = quote_etag(
                thumbnails.thumbnail_key(
                    source, frame_number, viewport.width, viewport.height, choice.media_type
                ).replace("/", "-")
            )
            wanted = parse_etags(request.META.get("HTTP_IF_NONE_MATCH", ""))  # "*" → ["*"]
            if etag in wanted or "*" in wanted:
                response = HttpResponse(status=304)
                response["ETag"] = etag
                response["Cache-Control"] = THUMBNAIL_CACHE_CONTROL
                return response
        try:
            data, stored = thumbnails.get_or_make(source, frame_number, viewport, choice.media_type)
        except ViewportError as exc:
            raise ParseError(f"viewport: {exc}") from exc
        except RenderError as exc:
            raise NotAcceptable(f"Instance {source.instance_uid} cannot be rendered: {exc}") from exc
        response = HttpResponse(data, content_type=choice.media_type)
        response["Archway-Thumbnail"] = "stored" if stored else "rendered"
        if etag is not None:
            response["ETag"] = etag
            response["Cache-Control"] = THUMBNAIL_CACHE_CONTROL
        return response
