"""Retrieve Capabilities (PS3.18 §8.9): ``OPTIONS`` on the service or any resource.

The document is generated from the live URL patterns and each view's own negotiation
table and query parameters, so it cannot drift from what Archway actually does. WADL
(``application/vnd.sun.wadl+xml``) is the default representation; ``application/json``
carries the same content for scripts.

OPTIONS needs no authentication: it reveals no patient data, and browsers send CORS
preflights (which django-cors-headers answers before this view) without credentials.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from dicomweb.media import MediaTypeError, parse_accept
from dicomweb.negotiation import AcceptDescriptor

WADL = "application/vnd.sun.wadl+xml"
JSON = "application/json"

# Operation names per (view class name, method), in the standard's vocabulary.
OPERATIONS = {
    ("StoreView", "POST"): "Store Instances (STOW-RS)",
    ("StoreView", "PUT"): "Upsert Instances",
    ("InstancesView", "GET"): "Retrieve Instances (WADO-RS)",
    ("MetadataView", "GET"): "Retrieve Metadata",
    ("FramesView", "GET"): "Retrieve Frames",
    ("BulkDataView", "GET"): "Retrieve Bulk Data",
    ("StudySearchView", "GET"): "Search for Studies (QIDO-RS)",
    ("SeriesSearchView", "GET"): "Search for Series (QIDO-RS)",
    ("InstanceSearchView", "GET"): "Search for Instances (QIDO-RS)",
    ("DeleteView", "DELETE"): "Delete",
    ("ChangeFeedView", "GET"): "Change Feed",
    ("ChangeFeedLatestView", "GET"): "Latest Change Feed Entry",
    ("WadoUriView", "GET"): "Retrieve (WADO-URI)",
    ("RenderedView", "GET"): "Retrieve Rendered",
    ("ThumbnailView", "GET"): "Retrieve Thumbnail",
}
STORE_REQUEST_TYPES = ('multipart/related; type="application/dicom"', "application/dicom")


@dataclass
class Method:
    name: str
    operation: str
    requests: list[str] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)


@dataclass
class Resource:
    path: str
    methods: list[Method]


def _route_to_path(route: str) -> str:
    """``studies/<uid:study_uid>/frames/<str:frames>`` → ``/studies/{study}/frames/{frames}``."""

    def name(match: re.Match) -> str:
        return "{" + match.group(1).removesuffix("_uid") + "}"

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", name, route)


def _descriptors(view_class, route: str) -> tuple[AcceptDescriptor, ...]:
    table = getattr(view_class, "accept_descriptors", None)
    if callable(table):
        probe = view_class()
        probe.kwargs = {"instance_uid": "x"} if "instance_uid" in route else {}
        return tuple(table(probe, None))
    if table:
        return tuple(table)
    renderers = getattr(view_class, "renderer_classes", [])
    return tuple(AcceptDescriptor(r.media_type) for r in renderers)


def _representation(descriptor: AcceptDescriptor) -> dict:
    entry: dict = {"mediaType": descriptor.describe()}
    if descriptor.default_ts is not None:
        entry["defaultTransferSyntax"] = descriptor.default_ts
        entry["transferSyntaxes"] = sorted(descriptor.allowed() | {descriptor.default_ts})
    return entry


def _parameters(view_class, route: str) -> list[str]:
    target = getattr(view_class, "target", None)
    if target is not None:
        from archive.query import SEARCHABLE, searchable_levels
        from dicomweb.queryparams import CONTROL_PARAMETERS

        levels = searchable_levels(
            target, study_in_path="study_uid" in route, series_in_path="series_uid" in route
        )
        keywords = sorted(a.keyword for a in SEARCHABLE.values() if a.level in levels)
        return keywords + sorted(CONTROL_PARAMETERS - {"charset"})
    return list(getattr(view_class, "query_parameters", ()))


def resources(patterns: Iterable[URLPattern]) -> list[Resource]:
    found = []
    for pattern in patterns:
        handlers = getattr(pattern.callback, "handlers", None)
        if not handlers:
            continue
        route = str(pattern.pattern)
        methods = []
        for method, view in handlers.items():
            if method == "HEAD":
                continue
            view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
            if view_class is None:
                continue
            operation = getattr(view_class, "operations", {}).get(method)  # views may name their own
            entry = Method(method, operation or OPERATIONS.get((view_class.__name__, method), method.title()))
            if view_class.__name__ == "StoreView":
                entry.requests = list(STORE_REQUEST_TYPES)
            entry.responses = [_representation(d) for d in _descriptors(view_class, route)]
            entry.parameters = _parameters(view_class, route)
            methods.append(entry)
        if methods:
            found.append(Resource(_route_to_path(route), methods))
    return found


def as_json(base: str, found: list[Resource]) -> bytes:
    document = {
        "base": base,
        "resources": [
            {
                "path": resource.path,
                "methods": [
                    {
                        "name": m.name,
                        "operation": m.operation,
                        **({"requestMediaTypes": m.requests} if m.requests else {}),
                        "representations": m.responses,
                        **({"queryParameters": m.parameters} if m.parameters else {}),
                    }
                    for m in resource.methods
                ],
            }
            for resource in found
        ],
    }
    return json.dumps(document, indent=1).encode()


def as_wadl(base: str, found: list[Resource]) -> bytes:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<application xmlns="http://wadl.dev.java.net/2009/02">',
        f"<resources base={quoteattr(base + '/')}>",
    ]
    for resource in found:
        lines.append(f"<resource path={quoteattr(resource.path.lstrip('/'))}>")
        for name in re.findall(r"\{(\w+)\}", resource.path):
            lines.append(
                f'<param name={quoteattr(name)} style="template" required="true" type="xsd:string"/>'
            )
        for method in resource.methods:
            lines.append(f"<method name={quoteattr(method.name)} id={quoteattr(method.operation)}>")
            if method.requests or method.parameters:
                lines.append("<request>")
                for parameter in method.parameters:
                    lines.append(f'<param name={quoteattr(parameter)} style="query"/>')
                for media in method.requests:
                    lines.append(f"<representation mediaType={quoteattr(media)}/>")
                lines.append("</request>")
            lines.append("<response>")
            for representation in method.responses:
                syntaxes = " ".join(representation.get("transferSyntaxes", []))
                extra = f" transferSyntaxes={quoteattr(syntaxes)}" if syntaxes else ""
                lines.append(f"<representation mediaType={quoteattr(representation['mediaType'])}{extra}/>")
            lines.append("</response>")
            lines.append("</method>")
        lines.append("</resource>")
    lines += ["</resources>", "</application>"]
    return "\n".join(lines).encode()


def capabilities_response(request: HttpRequest, patterns: Iterable[URLPattern], *, allow: str | None = None):
    """The capabilities document for ``patterns`` in the negotiated format (406 otherwise)."""
    from dicomweb.views.base import base_url

    try:
        ranges = parse_accept(request.GET.get("accept") or request.headers.get("Accept"))
    except MediaTypeError:
        ranges = []
    chosen = next((media for r in ranges for media in (WADL, JSON) if r.matches(media)), None)
    found = resources(patterns)
    if chosen is None:
        response = HttpResponse(
            json.dumps({"detail": f"Capabilities are available as {WADL} or {JSON}."}),
            status=406,
            content_type=JSON,
        )
    else:
        base = base_url(request)
        body = as_wadl(base, found) if chosen == WADL else as_json(base, found)
        response = HttpResponse(body, content_type=chosen)
    if allow:
        response["Allow"] = allow
    return response
