"""The display pipeline, case by case, with pixel values worked out by hand from PS3.3.

Each synthetic instance is written as a Part 10 file into blob storage and read back the
way the server does (``read_frame`` through ``BlobFile``); the display values are then
encoded as PNG (lossless) and decoded, so what is asserted is what a browser would show.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from archive import storage
from rendering.images import RenderParams, Viewport, render
from rendering.pixels import RenderError, Window
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _mono(values, *, bits_stored: int = 16, signed: bool = False, frames: int = 1, **attributes) -> Dataset:
    array = np.asarray(values)
    rows, columns = array.shape[-2:]
    ds = make_dataset(rows=rows, columns=columns, frames=frames)
    for keyword in ("RescaleIntercept", "RescaleSlope"):
        del ds[keyword]
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = array.astype("<u2" if not signed else "<i2").tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _colour(data: bytes, rows: int, columns: int, photometric: str, planar: int = 0) -> Dataset:
    ds = make_dataset(rows=rows, columns=columns)
    for keyword in ("RescaleIntercept", "RescaleSlope"):
        del ds[keyword]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = data
    return ds


@pytest.fixture
def shown(dicom_storage):
    """Store a data set as a blob and return what the pipeline displays (PNG, decoded)."""

    def show(ds: Dataset, *, frame: int = 1, window: Window | None = None, **params) -> np.ndarray:
        key = f"dicom/{new_uid()}/{new_uid()}/{ds.SOPInstanceUID}.1.dcm"
        data = to_part10(ds)
        storage.put(key, io.BytesIO(data), size=len(data))
        png = render(key, frame - 1, RenderParams(media_type="image/png", window=window, **params))
        return np.array(Image.open(io.BytesIO(png)))

    return show


def test_rescale_slope_and_intercept_then_a_linear_window(shown):
    # HU = 2 * stored - 100 → [-100, 100, 300, 500]; LINEAR c=200 w=401 (C.11.2.1.2.1):
    # 100 → ((100 - 199.5) / 400 + 0.5) * 255 = 64.07; 300 → 191.57.
    ds = _mono([[0, 100], [200, 300]], RescaleSlope=2, RescaleIntercept=-100)
    assert shown(ds, window=Window(200, 401)).tolist() == [[0, 64], [192, 255]]


def test_modality_lut_sequence_then_a_linear_exact_window_from_the_data_set(shown):
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.ModalityLUTType = "HU"
    item.LUTData = np.array([10, 20, 30, 40], "<u2").tobytes()
    ds = _mono(
        [[0, 1], [2, 3]],
        ModalityLUTSequence=Sequence([item]),
        WindowCenter=25,
        WindowWidth=30,
        VOILUTFunction="LINEAR_EXACT",
    )
    # LUT → [10, 20, 30, 40]; LINEAR_EXACT c=25 w=30 (C.11.2.1.3.2): ((x - 25)/30 + 0.5) * 255.
    assert shown(ds).tolist() == [[0, 85], [170, 255]]


def test_voi_lut_sequence_maps_through_its_table(shown):
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item.LUTData = np.array([0, 51, 204, 255], "<u2").tobytes()
    ds = _mono([[0, 1], [2, 3]], VOILUTSequence=Sequence([item]))
    assert shown(ds).tolist() == [[0, 51], [204, 255]]


def test_the_window_parameter_overrides_the_data_set_window(shown):
    ds = _mono([[0, 1000], [2000, 3000]], WindowCenter=40, WindowWidth=400)
    # The stored window c=40 w=400: 0 → ((0 - 39.5) / 399 + 0.5) * 255 = 102.3; 1000 is above 239.5.
    assert shown(ds).tolist() == [[102, 255], [255, 255]]
    # Width 1 is a threshold at the center: white above 1999.5.
    assert shown(ds, window=Window(2000, 1)).tolist() == [[0, 0], [255, 255]]


def test_sigmoid_window(shown):
    # y = 255 / (1 + exp(-4 (x - c) / w)), c=200 w=400 (C.11.2.1.3.1)
    ds = _mono([[0, 100], [200, 400]])
    assert shown(ds, window=Window(200, 400, "SIGMOID")).tolist() == [[30, 69], [128, 225]]


def test_monochrome1_is_inverted(shown):
    ds = _mono([[0, 100], [200, 300]], RescaleSlope=2, RescaleIntercept=-100)
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert shown(ds, window=Window(200, 401)).tolist() == [[255, 191], [63, 0]]


def test_signed_12_bit_values_are_sign_extended(shown):
    # Two's complement in 12 bits, stored unextended in 16: 0xFFB is -5, 0x800 is -2048.
    ds = _mono(np.array([[0xFFB, 5], [0x800, 0x7FF]]), bits_stored=12)
    ds.PixelRepresentation = 1
    # LINEAR c=0 w=4096: -5 → ((-4.5)/4095 + 0.5) * 255 = 127.2; 5 → 127.8; ends at 0 and 255.
    assert shown(ds, window=Window(0, 4096)).tolist() == [[127, 128], [0, 255]]


def test_bits_stored_12_ignores_the_unused_high_bits(shown):
    # Without a window the frame's min..max is shown; bits above Bits Stored are not data.
    ds = _mono(np.array([[0, 0xF000 | 4095], [2048, 1024]]), bits_stored=12)
    assert shown(ds).tolist() == [[0, 255], [128, 64]]


def test_rgb_is_shown_as_stored(shown):
    data = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    assert shown(_colour(data, 2, 2, "RGB")).tolist() == [
        [[255, 0, 0], [0, 255, 0]],
        [[0, 0, 255], [10, 20, 30]],
    ]


def test_rgb_planar_configuration_1(shown):
    # R plane, G plane, B plane: the same image as above.
    planes = bytes([255, 0, 0, 10]) + bytes([0, 255, 0, 20]) + bytes([0, 0, 255, 30])
    assert shown(_colour(planes, 2, 2, "RGB", planar=1)).tolist() == [
        [[255, 0, 0], [0, 255, 0]],
        [[0, 0, 255], [10, 20, 30]],
    ]


def test_ybr_full_is_converted_to_rgb(shown):
    # PS3.3 C.7.6.3.1.2: R = Y + 1.402 (Cr-128) = 254.05; G = 0.1; B = -0.2 → (254, 0, 0).
    data = bytes([76, 85, 255, 128, 128, 128])
    assert shown(_colour(data, 1, 2, "YBR_FULL")).tolist() == [[[254, 0, 0], [128, 128, 128]]]


def test_ybr_full_422_is_upsampled_and_converted(shown):
    # Two pixels share Cb/Cr: Y1 Y2 Cb Cr.
    data = bytes([76, 128, 85, 255])
    # Y=128 with the same chroma: R = 128 + 178.05 → 255 (clipped); G = 128 + 14.8 - 90.7 = 52.1;
    # B = 128 + 1.772 * (85 - 128) = 51.8.
    assert shown(_colour(data, 1, 2, "YBR_FULL_422")).tolist() == [[[254, 0, 0], [255, 52, 52]]]


def test_palette_colour_through_its_16_bit_tables(shown):
    ds = _mono([[0, 1], [2, 3]])
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = bytes([0, 1, 2, 3])
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for colour, table in (("Red", [0, 65535, 0, 32768]), ("Green", [0, 0, 65535, 32768]), ("Blue", [0] * 4)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.array(table, "<u2").tobytes())
    assert shown(ds).tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [128, 128, 0]]]


def test_multi_frame_shows_the_frame_asked_for(shown):
    frames = np.stack([np.full((2, 2), value) for value in (0, 1000, 2000, 3000)])
    ds = _mono(frames, frames=4, NumberOfFrames=4)
    window = Window(2000, 1)
    assert shown(ds, window=window).tolist() == [[0, 0], [0, 0]]  # frame 1 by default
    assert shown(ds, frame=3, window=window).tolist() == [[255, 255], [255, 255]]
    assert shown(ds, frame=2, window=window).tolist() == [[0, 0], [0, 0]]  # 1000 is below the threshold
    assert shown(ds, frame=2, window=Window(500, 1)).tolist() == [[255, 255], [255, 255]]


def test_viewport_crops_flips_and_fits(shown):
    ds = _mono(np.arange(16).reshape(4, 4) * 17)  # min..max 0..255 maps to itself
    # Source region 2x2 at (1, 1), shown at 2x2.
    assert shown(ds, viewport=Viewport(2, 2, 1, 1, 2, 2)).tolist() == [[85, 102], [153, 170]]
    # A negative width flips horizontally.
    assert shown(ds, viewport=Viewport(2, 2, 3, 0, -2, 2)).tolist() == [[34, 17], [102, 85]]
    # Fit keeps the aspect ratio: a 4x4 frame in 8x2 is 2x2.
    assert shown(ds, viewport=Viewport(8, 2)).shape == (2, 2)


def test_an_instance_without_pixel_data_cannot_be_rendered(dicom_storage):
    ds = make_dataset()
    del ds.PixelData
    key = f"dicom/{new_uid()}/{new_uid()}/{ds.SOPInstanceUID}.1.dcm"
    data = to_part10(ds)
    storage.put(key, io.BytesIO(data), size=len(data))
    with pytest.raises(RenderError):
        render(key, 0, RenderParams(media_type="image/png"))


def test_a_window_must_be_usable():
    with pytest.raises(ValueError):
        Window(40, 0.5)  # LINEAR needs width >= 1
    with pytest.raises(ValueError):
        Window(40, 400, "CUBIC")
