"""Content negotiation for DICOMweb (PS3.18 §8.7).

The ``accept`` query parameter wins over the Accept header (PS3.18 §8.7.8.1; OHIF
relies on it), ranges are ordered by q-value (RFC 7231) — which DRF's default
negotiation ignores — and an unparsable Accept is a 400, not a silent default.
"""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import BaseContentNegotiation

from dicomweb.media import MediaTypeError, parse_accept


def accept_ranges(request):
    raw = request.query_params.get("accept") if hasattr(request, "query_params") else None
    header = raw if raw else request.headers.get("Accept")
    try:
        return parse_accept(header)
    except MediaTypeError as exc:
        raise ParseError(f"Invalid Accept: {exc}") from exc


class DicomContentNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        # DICOMweb views read their bodies themselves (streaming); no DRF parser runs.
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        for media_range in accept_ranges(request):
            for renderer in renderers:
                if media_range.matches(renderer.media_type):
                    return renderer, renderer.media_type
        offered = ", ".join(r.media_type for r in renderers)
        raise NotAcceptable(f"None of the requested media types can be returned here; available: {offered}")
