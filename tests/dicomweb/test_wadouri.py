"""WADO-URI (PS3.18 chapter 9) through the running server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, to_part10

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def ct(api):
    ds = make_dataset(rows=32, columns=32, WindowCenter=40, WindowWidth=400)
    assert stow(api, [to_part10(ds)]).status_code == 200
    return ds


def wado(ds, **params):
    query = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
        **params,
    }
    return "/dicomweb/wado", query


def test_application_dicom_returns_the_instance(api, ct):
    path, query = wado(ct, contentType="application/dicom", transferSyntax="*")
    response = api.get(path, params=query)
    assert response.status_code == 200
    assert response.content == b"\x00" * 128 + to_part10(ct)[128:]


def test_default_content_type_is_a_jpeg(api, ct):
    path, query = wado(ct)
    response = api.get(path, params=query)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (32, 32)


def test_png_with_a_threshold_window_shows_exact_pixels(api, ct):
    path, query = wado(ct, contentType="image/png", windowCenter="1000", windowWidth="1")
    response = api.get(path, params=query)
    assert response.status_code == 200
    image = np.array(Image.open(io.BytesIO(response.content)))
    hounsfield = ct.pixel_array.astype(int) - 1024  # RescaleIntercept -1024, slope 1
    # Width 1 is a threshold at the center (PS3.3 C.11.2.1.2.1): white above 999.5 HU.
    assert np.array_equal(image, np.where(hounsfield > 999.5, 255, 0))


def test_rows_resizes_keeping_aspect(api, ct):
    path, query = wado(ct, contentType="image/png", rows="16")
    image = Image.open(io.BytesIO(api.get(path, params=query).content))
    assert image.size == (16, 16)


@pytest.mark.parametrize(
    "params,missing",
    [
        ({"requestType": None}, "requestType"),
        ({"studyUID": None}, "studyUID"),
        ({"objectUID": "not_a_uid!"}, "objectUID"),
        ({"frameNumber": "0"}, "frameNumber"),
        ({"windowCenter": "40"}, "windowCenter"),
        ({"imageQuality": "101"}, "imageQuality"),
        ({"region": "0.5,0.5,0.2,0.2"}, "region"),
        ({"contentType": "application/dicom", "rows": "10"}, "rows"),
    ],
)
def test_bad_parameters_answer_400_naming_them(api, ct, params, missing):
    path, query = wado(ct)
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    response = api.get(path, params=query)
    assert response.status_code == 400
    assert missing in response.json()["detail"]


def test_unknown_instance_is_404(api, ct):
    path, query = wado(ct, objectUID="1.2.3.4")
    assert api.get(path, params=query).status_code == 404


def test_unsupported_content_type_is_406(api, ct):
    path, query = wado(ct, contentType="video/mpeg")
    assert api.get(path, params=query).status_code == 406
