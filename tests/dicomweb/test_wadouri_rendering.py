"""WADO-URI renders through the same pixel pipeline: frameNumber, region, rows/columns, quality."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.dicomweb.test_stow import stow
from tests.dicomweb.test_wadouri import wado
from tests.factories import make_dataset, to_part10

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def frames(api):
    ds = make_dataset(rows=8, columns=8, frames=2, NumberOfFrames=2, RescaleIntercept=0)
    left_dark = np.zeros((8, 8), np.uint16)
    left_dark[:, 4:] = 3000
    ds.PixelData = np.stack([left_dark, np.full((8, 8), 3000, np.uint16)]).tobytes()
    assert stow(api, [to_part10(ds)]).status_code == 200
    return ds


def shown(api, ds, **params) -> np.ndarray:
    path, query = wado(ds, contentType="image/png", windowCenter="1500", windowWidth="1", **params)
    response = api.get(path, params=query)
    assert response.status_code == 200, response.text
    return np.array(Image.open(io.BytesIO(response.content)))


def test_frame_number_selects_the_frame(api, frames):
    assert shown(api, frames)[:, :4].max() == 0
    assert shown(api, frames, frameNumber="2").min() == 255


def test_region_then_columns(api, frames):
    right_half = shown(api, frames, region="0.5,0,1,1")
    assert right_half.shape == (8, 4) and right_half.min() == 255
    assert shown(api, frames, region="0,0,0.5,1", columns="2").shape == (4, 2)


def test_image_quality_changes_the_jpeg(api, frames):
    path, query = wado(frames)
    sizes = [len(api.get(path, params={**query, "imageQuality": q}).content) for q in ("1", "100")]
    assert sizes[0] < sizes[1]


def test_frame_beyond_the_last_is_404(api, frames):
    path, query = wado(frames, frameNumber="3")
    assert api.get(path, params=query).status_code == 404
