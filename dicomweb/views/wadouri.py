"""WADO-URI (PS3.18 chapter 9): ``GET /dicomweb/wado?requestType=WADO&studyUID=…``.

Older viewers and reporting systems link to single images this way. Parameters are
validated one by one with a 400 that names the parameter.
"""

from __future__ import annotations

from django.http import HttpResponse
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError

from dicomweb.media import DICOM, MediaTypeError, parse_accept
from dicomweb.negotiation import AS_STORED, EXPLICIT_VR_LE
from dicomweb.renderers import DicomJsonRenderer
from dicomweb.views.base import DicomWebView, check_uid
from dicomweb.views.retrieve import (
    TranscodePlan,
    instance_body,
    read_closing,
    resolve_rows,
    stream_response,
    transcode_now,
)

RENDERED = ("image/jpeg", "image/png", "image/gif")


def _param(request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value not in (None, "") else None


def _number(
    request, name: str, *, minimum: float | None = None, maximum: float | None = None, integer: bool = False
):
    text = _param(request, name)
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError as exc:
        raise ParseError(f"{name} must be a {'whole ' if integer else ''}number, not {text!r}.") from exc
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParseError(f"{name}={text} is out of range.")
    return value


class WadoUriView(DicomWebView):
    renderer_classes = [DicomJsonRenderer]  # errors only; bodies are built here
    query_parameters = (
        "requestType",
        "studyUID",
        "seriesUID",
        "objectUID",
        "contentType",
        "transferSyntax",
        "frameNumber",
        "rows",
        "columns",
        "region",
        "windowCenter",
        "windowWidth",
        "imageQuality",
    )

    def get(self, request):
        if request.query_params.get("requestType") != "WADO":
            raise ParseError("requestType=WADO is required.")
        uids = {}
        for name in ("studyUID", "seriesUID", "objectUID"):
            value = _param(request, name)
            if value is None:
                raise ParseError(f"{name} is required.")
            uids[name] = check_uid(value, name)
        (row,) = resolve_rows(uids["studyUID"], uids["seriesUID"], uids["objectUID"], metadata=True)
        media = self._content_type(request)
        if media == DICOM:
            return self._instance(request, row)
        return self._rendered(request, row, media)

    @staticmethod
    def _content_type(request) -> str:
        text = _param(request, "contentType") or "image/jpeg"
        try:
            ranges = parse_accept(text)
        except MediaTypeError as exc:
            raise ParseError(f"contentType is malformed: {exc}") from exc
        for media_range in ranges:
            for offered in (*RENDERED, DICOM):
                if media_range.matches(offered):
                    return offered
        raise NotAcceptable(
            f"contentType {text} is not supported; use application/dicom, image/jpeg, image/png or image/gif."
        )

    def _instance(self, request, row):
        for name in ("frameNumber", "rows", "columns", "region", "windowCenter", "windowWidth"):
            if _param(request, name) is not None:
                raise ParseError(f"{name} cannot be used with contentType=application/dicom.")
        target = _param(request, "transferSyntax") or EXPLICIT_VR_LE
        if target != AS_STORED:
            check_uid(target, "transferSyntax")
        plan = TranscodePlan(target)
        problem = plan.problem(row)
        if problem:
            raise NotAcceptable(problem)
        if plan.needs_transcode(row):
            spooled = transcode_now(row, plan)
            length = spooled.seek(0, 2)
            spooled.seek(0)
            return stream_response(
                read_closing(spooled), f"{DICOM}; transfer-syntax={plan.actual(row)}", length=length
            )
        return stream_response(
            lambda: instance_body(row, plan), f"{DICOM}; transfer-syntax={plan.actual(row)}", length=row.size
        )

    def _rendered(self, request, row, media: str):
        from rendering.images import RenderParams, render
        from rendering.pixels import RenderError, Window

        if _param(request, "transferSyntax") is not None:
            raise ParseError("transferSyntax can only be used with contentType=application/dicom.")
        frames = int(row.frame_table.get("number_of_frames", 0) or 0)
        if row.frame_table.get("kind", "none") == "none":
            raise NotFound("The instance has no pixel data to render.")
        frame_number = _number(request, "frameNumber", minimum=1, integer=True) or 1
        if frame_number > frames:
            raise NotFound(f"frameNumber {frame_number} is out of range: the instance has {frames} frame(s).")
        center = _number(request, "windowCenter")
        width = _number(request, "windowWidth", minimum=1)
        if (center is None) != (width is None):
            raise ParseError("windowCenter and windowWidth must be given together.")
        region = None
        if (text := _param(request, "region")) is not None:
            try:
                region = tuple(float(v) for v in text.split(","))
            except ValueError as exc:
                raise ParseError("region must be four numbers x1,y1,x2,y2 between 0 and 1.") from exc
            if (
                len(region) != 4
                or not all(0 <= v <= 1 for v in region)
                or region[0] >= region[2]
                or region[1] >= region[3]
            ):
                raise ParseError(
                    "region must be four numbers x1,y1,x2,y2 between 0 and 1, with x1<x2 and y1<y2."
                )
        try:
            window = Window(center, width) if center is not None and width is not None else None
        except ValueError as exc:
            raise ParseError(f"windowCenter/windowWidth: {exc}.") from exc
        params = RenderParams(
            media_type=media,
            quality=int(_number(request, "imageQuality", minimum=1, maximum=100, integer=True) or 100),
            window=window,
            rows=_number(request, "rows", minimum=1, maximum=8192, integer=True),
            columns=_number(request, "columns", minimum=1, maximum=8192, integer=True),
            region=region,  # type: ignore[arg-type]
        )
        try:
            body = render(row.blob_key, frame_number - 1, params, size=row.size)
        except RenderError as exc:
            raise NotAcceptable(str(exc)) from exc
        return HttpResponse(body, content_type=media)
