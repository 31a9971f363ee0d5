"""Accept negotiation as a table, without HTTP (DRF's test_negotiation style)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.request import Request

from dicomweb.media import MediaType, MediaTypeError, parse_accept
from dicomweb.negotiation import negotiate
from dicomweb.views.retrieve import FRAME_DESCRIPTORS, METADATA_DESCRIPTORS, SINGLE_INSTANCE_DESCRIPTORS

EVRLE = "1.2.840.10008.1.2.1"
J2K = "1.2.840.10008.1.2.4.90"


def request(accept: str | None = None, query: str = "") -> Request:
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    return Request(RequestFactory().get(f"/x{query}", **headers))


@pytest.mark.parametrize(
    "accept,media,multipart,ts",
    [
        (None, "application/dicom", True, EVRLE),
        ("*/*", "application/dicom", True, EVRLE),
        ("*", "application/dicom", True, EVRLE),
        ("application/dicom", "application/dicom", False, EVRLE),
        ("application/dicom; transfer-syntax=*", "application/dicom", False, "*"),
        ('application/dicom; transfer-syntax="*"', "application/dicom", False, "*"),
        ('multipart/related; type="application/dicom"', "application/dicom", True, EVRLE),
        ("multipart/related; type=application/dicom; transfer-syntax=*", "application/dicom", True, "*"),
        ('multipart/related; type="*/*"', "application/dicom", True, EVRLE),
        ("multipart/related", "application/dicom", True, EVRLE),
        # q-values order the choice (RFC 7231), not position
        (
            "application/dicom;q=0.5, multipart/related;type=application/dicom;q=0.9",
            "application/dicom",
            True,
            EVRLE,
        ),
        # an unavailable syntax falls through to the next acceptable range
        (
            "application/dicom; transfer-syntax=1.2.3.4, application/dicom;q=0.1",
            "application/dicom",
            False,
            EVRLE,
        ),
    ],
)
def test_instance_table(accept, media, multipart, ts):
    choice = negotiate(request(accept), SINGLE_INSTANCE_DESCRIPTORS)
    assert (choice.media_type, choice.multipart, choice.transfer_syntax) == (media, multipart, ts)


@pytest.mark.parametrize(
    "accept",
    [
        "image/png",
        "application/dicom; transfer-syntax=1.2.3.4",
        "application/dicom;q=0",
        'multipart/related; type="image/jpeg"',
    ],
)
def test_instance_table_refuses(accept):
    with pytest.raises(NotAcceptable):
        negotiate(request(accept), SINGLE_INSTANCE_DESCRIPTORS)


@pytest.mark.parametrize(
    "accept,media,multipart,ts",
    [
        (None, "application/octet-stream", True, EVRLE),
        (
            'multipart/related; type="application/octet-stream"; transfer-syntax=*',
            "application/octet-stream",
            True,
            "*",
        ),
        ('multipart/related; type="*/*"', "application/octet-stream", True, EVRLE),  # dicomweb-client
        ("application/octet-stream", "application/octet-stream", False, EVRLE),
        ('multipart/related; type="image/jp2"', "image/jp2", True, J2K),
        ("image/jp2", "image/jp2", False, J2K),
        (
            'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.70',
            "image/jpeg",
            True,
            "1.2.840.10008.1.2.4.70",
        ),
    ],
)
def test_frame_table(accept, media, multipart, ts):
    choice = negotiate(request(accept), FRAME_DESCRIPTORS)
    assert (choice.media_type, choice.multipart, choice.transfer_syntax) == (media, multipart, ts)


def test_frame_table_refuses_a_syntax_that_does_not_fit_the_media_type():
    with pytest.raises(NotAcceptable):
        negotiate(
            request('multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.50'),
            FRAME_DESCRIPTORS,
        )


@pytest.mark.parametrize(
    "accept,media,multipart",
    [
        (None, "application/dicom+json", False),
        ("application/json", "application/json", False),
        ('multipart/related; type="application/dicom+xml"', "application/dicom+xml", True),
        ("application/dicom+xml;q=0.2, application/dicom+json;q=0.1", "application/dicom+json", False),
    ],
)
def test_metadata_table(accept, media, multipart):
    choice = negotiate(request(accept), METADATA_DESCRIPTORS)
    assert (choice.media_type, choice.multipart) == (media, multipart)


def test_accept_query_parameter_wins_over_the_header():
    choice = negotiate(
        request(
            "application/dicom+json",
            "?accept=multipart%2Frelated%3B%20type%3D%22application%2Fdicom%2Bxml%22",
        ),
        METADATA_DESCRIPTORS,
    )
    assert choice.media_type == "application/dicom+xml"


def test_malformed_accept_is_a_parse_error():
    with pytest.raises(ParseError):
        negotiate(request("application/dicom; q=abc"), SINGLE_INSTANCE_DESCRIPTORS)


@pytest.mark.parametrize("text", ["nonsense", "a/b; c", "text/html; q=2"])
def test_media_type_parse_errors(text):
    with pytest.raises(MediaTypeError):
        MediaType.parse(text)


def test_accept_order_is_q_then_specificity_then_position():
    ranges = parse_accept("*/*;q=0.1, text/*, text/html;level=1, text/html, application/json;q=0.5")
    assert [str(r) for r in ranges] == [
        "text/html; level=1",
        "text/html",
        "text/*",
        "application/json",
        "*/*",
    ]
