"""CORS for browser viewers on another origin (django-cors-headers, configured from the environment)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, to_part10

ORIGIN = "https://viewer.example.org"


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_preflight_allows_authorization_header(anonymous):
    response = anonymous.options(
        "/dicomweb/studies/1.2.3/metadata",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"]


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_preflight_allows_asking_for_the_original_of_a_corrected_instance(anonymous):
    response = anonymous.options(
        "/dicomweb/studies/1.2.3",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "msdicom-request-original, if-none-match",
        },
    )
    assert response.status_code == 200
    allowed = response.headers["access-control-allow-headers"]
    assert "msdicom-request-original" in allowed and "if-none-match" in allowed


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_cross_origin_metadata_exposes_etag_and_warning(api):
    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    response = api.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "warning" in exposed and "content-type" in exposed


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_other_origins_get_no_cors_headers(api):
    response = api.get("/dicomweb/studies/1.2.3/metadata", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


pytestmark = pytest.mark.filterwarnings("ignore")
