"""Archway's ASGI handler (config.handler): one thread hop per request, bodies streamed."""

from __future__ import annotations

import io
from pathlib import Path

import django.contrib.admin
import httpx
import pydicom
import pytest
from django.utils.deprecation import MiddlewareMixin

from config.handler import ArchwayASGIHandler
from tests.factories import make_instance, multipart_body

ADMIN_CSS = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "css" / "base.css"


def _chain(handler):
    """Every layer of a loaded middleware chain, outermost first."""
    layer = handler
    while layer is not None:
        yield layer
        layer = (
            getattr(layer, "func", None)  # SyncToAsync
            or getattr(layer, "awaitable", None)  # AsyncToSync
            or getattr(layer, "__wrapped__", None)  # convert_exception_to_response
            or getattr(layer, "get_response", None)  # a middleware
        )


def test_the_middleware_stack_is_plain_synchronous_code():
    layers = list(_chain(ArchwayASGIHandler()._middleware_chain))
    mixins = [layer for layer in layers if isinstance(layer, MiddlewareMixin)]
    assert len(mixins) >= 7
    # Async mode would wrap each process_request/process_response in sync_to_async.
    assert not [type(m).__name__ for m in mixins if m.async_mode]
    adapters = {"SyncToAsync", "AsyncToSync"}
    assert not [type(layer).__name__ for layer in layers if type(layer).__name__ in adapters]


def test_a_static_file_is_served_whole_over_http(live_url):
    # WhiteNoise answers with a file iterator (sync): the handler pulls it chunk by chunk.
    response = httpx.get(f"{live_url}/static/admin/css/base.css")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.content == ADMIN_CSS.read_bytes()


def test_paths_reach_the_views_over_http(live_url):
    assert httpx.get(f"{live_url}/dicomweb/studies").status_code == 401
    assert httpx.get(f"{live_url}/static/admin/css/no-such-file.css").status_code == 404
    missing = httpx.get(f"{live_url}/dicomweb/no-such-resource")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")


def test_a_client_that_goes_away_mid_download_leaves_the_server_serving(api):
    data = make_instance(rows=512, columns=512, frames=60)  # ~31 MB: many response chunks
    ds = pydicom.dcmread(io.BytesIO(data))
    stored = api.post("/dicomweb/studies", content=data, headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 200
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    accept = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    for _ in range(3):  # walk away after the first chunk, a few times
        with api.stream("GET", url, headers=accept) as response:
            assert response.status_code == 200
            next(response.iter_raw())
    # Nothing is stuck: a whole download still arrives intact.
    whole = api.get(url, headers=accept)
    assert whole.status_code == 200
    assert data[132:] in whole.content  # the stored Part 10 (preamble zeroed) inside the multipart body


def _stored(instance_uid: str) -> bytes:
    from archive import storage
    from archive.models import Instance

    return b"".join(storage.open_stream(Instance.objects.get(instance_uid=instance_uid).blob_key))


def test_bodies_below_and_above_the_in_memory_limit_are_stored_intact(api, settings):
    """Small bodies are joined in memory; one past FILE_UPLOAD_MAX_MEMORY_SIZE goes to a
    temporary file as it arrives (also when sent chunked, without a Content-Length)."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 200_000
    rounds = [
        ([make_instance(rows=64, columns=64)], False),  # ~8 KB: stays in memory
        ([make_instance(rows=256, columns=256) for _ in range(3)], False),  # ~400 KB: to disk
        ([make_instance(rows=256, columns=256), make_instance(rows=64, columns=64)], True),
    ]
    for parts, chunked in rounds:
        body, content_type = multipart_body(parts)
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
        response = api.post("/dicomweb/studies", content=content, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        for data in parts:
            uid = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
            assert _stored(uid) == b"\x00" * 128 + data[128:]


@pytest.mark.parametrize(
    "header",
    [
        'multipart/related; type="application/dicom"; boundary=abc',
        'multipart/related; type=application/dicom; boundary="a b"',
        'Multipart/Related; TYPE="application/dicom+json"; Boundary=XyZ',
        "application/dicom",
        'text/plain;charset="UTF-8" ',
        'multipart/related; boundary="a;b"',
        "text/plain; name*=UTF-8''%e2%82%ac",
        'a/b; x="y\\"z"',
        'multipart/related; type="application/dicom"; transfer-syntax=*; boundary=123',
        "a/b;",
        "a/b; ;",
        "a/b; x",
        'a/b; x=""',
        "",
    ],
)
def test_content_type_parse_matches_django(header):
    from django.utils.http import parse_header_parameters

    from config.handler import parse_content_type

    assert parse_content_type(header) == parse_header_parameters(header)
