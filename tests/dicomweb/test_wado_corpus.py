"""Every bundled file: stored, then retrieved as stored, by default, and in each lossless target."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from rendering.codecs import LOSSLESS_TARGETS, encodable
from tests.dicomweb.test_stow import required_attribute_problem
from tests.dicomweb.test_wado import instance_path
from tests.testdata import readable_part10_files

# Embedded tier only: transcoding does not depend on the backend, and the real tier
# already retrieves from S3 in test_wado.py / tests/real.

EVRLE = "1.2.840.10008.1.2.1"


def decoded(data: bytes) -> np.ndarray | None:
    try:
        return pydicom.dcmread(io.BytesIO(data)).pixel_array
    except Exception:
        return None


def simple_image(ds) -> bool:
    """Pixel data every lossless encoder must handle: 8/16-bit integer grey or colour."""
    return (
        "PixelData" in ds
        and int(ds.get("BitsAllocated", 0)) in (8, 16)
        and int(ds.get("SamplesPerPixel", 1)) in (1, 3)
        and str(ds.get("PhotometricInterpretation", "")) in ("MONOCHROME1", "MONOCHROME2", "RGB")
        and int(ds.get("BitsStored", 0)) <= 16
    )


STORABLE = [path for path in readable_part10_files() if required_attribute_problem(path) is None]


@pytest.mark.parametrize("path", STORABLE, ids=lambda p: p.name)
def test_bundled_file_round_trips_through_wado(api, path):
    data = path.read_bytes()
    response = api.post("/dicomweb/studies", content=data, headers={"Content-Type": "application/dicom"})
    assert response.status_code in (200, 202), response.text
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    url = instance_path(ds)

    as_stored = api.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert as_stored.status_code == 200
    assert as_stored.content == b"\x00" * 128 + data[128:]

    original = decoded(data)
    default = api.get(url, headers={"Accept": "application/dicom"})
    if original is None:
        # Undecodable here (or no pixel data): native re-encoding still works without pixels.
        assert default.status_code in (200, 406), default.text
        return
    assert default.status_code == 200, default.text
    out = pydicom.dcmread(io.BytesIO(default.content))
    assert out.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(out.pixel_array, original)

    for target in sorted(LOSSLESS_TARGETS & encodable()):
        response = api.get(url, headers={"Accept": f"application/dicom; transfer-syntax={target}"})
        if response.status_code == 406:
            assert not simple_image(ds), f"{target} refused a plain image: {response.text}"
            continue
        assert response.status_code == 200, response.text
        result = pydicom.dcmread(io.BytesIO(response.content))
        assert result.file_meta.TransferSyntaxUID == target
        assert np.array_equal(result.pixel_array, original), target
