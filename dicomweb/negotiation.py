"""Content negotiation for DICOMweb (PS3.18 §8.7).

* The ``accept`` query parameter wins over the Accept header (PS3.18 §8.7.8.1; OHIF
  sends ``?accept=image/jpeg`` beside a multipart Accept header).
* Media ranges are tried in RFC 7231 order (q-value, then specificity, then position);
  DRF's default negotiation ignores q-values and answers 406 to ordinary DICOMweb
  headers, so it is replaced.
* Each resource declares a table of ``AcceptDescriptor``s (media type, single part or
  multipart, default and allowed transfer syntaxes), after the MS DICOM server's
  ``AcceptHeaderHandler``. The first descriptor is the resource's default, which
  ``*/*`` and ``multipart/related; type="*/*"`` (dicomweb-client) resolve to.
* ``type`` and ``transfer-syntax`` parameters may be quoted or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import BaseContentNegotiation

from dicomweb.media import MULTIPART_RELATED, MediaType, MediaTypeError, parse_accept

AS_STORED = "*"  # transfer-syntax=* : each instance or frame as it is stored
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"


@dataclass(frozen=True, slots=True)
class AcceptDescriptor:
    """One representation a resource can return."""

    media_type: str  # the part media type for multipart descriptors
    multipart: bool = False
    default_ts: str | None = None  # None: the media type has no transfer-syntax parameter
    allowed_ts: Callable[[], Iterable[str]] | frozenset[str] = frozenset()

    def allowed(self) -> frozenset[str]:
        value = self.allowed_ts() if callable(self.allowed_ts) else self.allowed_ts
        return frozenset(value)

    def describe(self) -> str:
        if self.multipart:
            return f'multipart/related; type="{self.media_type}"'
        return self.media_type


@dataclass(frozen=True, slots=True)
class Choice:
    """The negotiated representation: what the view returns and in which syntax."""

    descriptor: AcceptDescriptor
    transfer_syntax: str | None

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def multipart(self) -> bool:
        return self.descriptor.multipart


def _ranges_from(request) -> list[MediaType]:
    query = getattr(request, "query_params", None) or getattr(request, "GET", {})
    raw = query.get("accept") if query is not None else None
    header = raw if raw else request.headers.get("Accept")
    try:
        return parse_accept(header)
    except MediaTypeError as exc:
        raise ParseError(f"Invalid Accept: {exc}") from exc


def _match(media_range: MediaType, descriptors: Sequence[AcceptDescriptor]) -> Choice | None:
    if media_range.type == "*" and media_range.subtype == "*":
        # */* takes the default representation; a transfer-syntax parameter still applies.
        return _with_syntax(descriptors[0], media_range)
    for descriptor in descriptors:
        if descriptor.multipart:
            if media_range.mime != MULTIPART_RELATED and not (
                media_range.type == "multipart" and media_range.subtype == "*"
            ):
                continue
            part_type = media_range.params.get("type", "").lower()
            if part_type in ("", "*/*", "*"):
                multipart_default = next((d for d in descriptors if d.multipart), None)
                if descriptor is not multipart_default:
                    continue
            elif not MediaType.parse(part_type).matches(descriptor.media_type):
                continue
        else:
            if not media_range.matches(descriptor.media_type):
                continue
        choice = _with_syntax(descriptor, media_range)
        if choice is not None:
            return choice
    return None


def _with_syntax(descriptor: AcceptDescriptor, media_range: MediaType) -> Choice | None:
    requested = media_range.params.get("transfer-syntax")
    if descriptor.default_ts is None:
        return Choice(descriptor, None) if requested in (None, "") else None
    if requested in (None, ""):
        return Choice(descriptor, descriptor.default_ts)
    if requested in descriptor.allowed() or requested == descriptor.default_ts:
        return Choice(descriptor, requested)
    return None


def negotiate(request, descriptors: Sequence[AcceptDescriptor]) -> Choice:
    """The best representation for ``request`` among ``descriptors``, or 406."""
    for media_range in _ranges_from(request):
        choice = _match(media_range, descriptors)
        if choice is not None:
            return choice
    offered = ", ".join(d.describe() for d in descriptors)
    raise NotAcceptable(
        f"None of the requested representations is available. This resource offers: {offered}"
    )


class DicomContentNegotiation(BaseContentNegotiation):
    """DRF hook: views with ``accept_descriptors`` negotiate from their table;
    others pick among their renderers by the same q-ordered rules."""

    def select_parser(self, request, parsers):
        # DICOMweb views read their bodies themselves (streaming); no DRF parser runs.
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        view = request.parser_context.get("view") if hasattr(request, "parser_context") else None
        table = getattr(view, "accept_descriptors", None)
        if callable(table):
            table = table(request)
        if table:
            choice = negotiate(request, table)
            request.dicom_choice = choice
            renderer = next(
                (r for r in renderers if r.media_type == choice.media_type and not choice.multipart),
                renderers[0],
            )
            return renderer, renderer.media_type
        for media_range in _ranges_from(request):
            for renderer in renderers:
                if media_range.matches(renderer.media_type):
                    return renderer, renderer.media_type
        offered = ", ".join(r.media_type for r in renderers)
        raise NotAcceptable(f"None of the requested media types can be returned here; available: {offered}")


# --- rendered and thumbnail resources (PS3.18 §10.4.1.1.3, Supplement 203) ---------------------
# The first entry is the default: a JPEG when the client sends no Accept (or */*).
RENDERED_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif")
RENDERED_DESCRIPTORS = tuple(AcceptDescriptor(media) for media in RENDERED_MEDIA_TYPES)
# Study and series rendered: every instance's first frame as one part each (multipart
# first, so it is the default), or a single image of the representative instance.
RENDERED_MULTIPART_DESCRIPTORS = (
    *(AcceptDescriptor(media, multipart=True) for media in RENDERED_MEDIA_TYPES),
    *RENDERED_DESCRIPTORS,
)
THUMBNAIL_DESCRIPTORS = RENDERED_DESCRIPTORS
