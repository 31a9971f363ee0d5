"""Stored frame → display pixels: decoding, Modality LUT, VOI LUT, presentation, colour.

The grayscale chain is PS3.4 Annex N / PS3.3 C.11: stored values → **Modality LUT**
(Rescale Slope/Intercept, or the Modality LUT Sequence) → **VOI LUT** → **presentation**
(MONOCHROME1 and Presentation LUT Shape INVERSE are inverted) → 8-bit. The VOI step uses,
in this order of precedence:

1. the ``window`` the client asked for (PS3.18 §8.3.5.1.4: ``center,width[,LINEAR|SIGMOID]``);
2. the data set's first Window Center/Width, with its VOI LUT Function (LINEAR,
   LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2-3);
3. the data set's first VOI LUT Sequence item (a lookup table);
4. the frame's own minimum/maximum (what most viewers do when nothing is given).

Window before LUT when a data set has both is a choice (the standard allows either);
it matches what common viewers show first. Colour data is converted to RGB: YBR_FULL and
YBR_FULL_422 by pydicom's colour-space conversion, PALETTE COLOR through its lookup
tables, planar configuration 1 de-interleaved by the decoder. Samples wider than 8 bits
are scaled by their Bits Stored (colour) or by the window (grayscale).

Decoding goes through pydicom (with the installed pylibjpeg/openjpeg/rle/jpegls plugins)
reading the blob through :class:`archive.blobfile.BlobFile`: only the header and the one
frame asked for are fetched (a ranged read per block), never the whole object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut

from archive import storage
from archive.blobfile import BlobFile

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
# (2050,0020) Presentation LUT Shape is outside group 0028; ask the reader for it too.
PRESENTATION_LUT_SHAPE = 0x20500020


class RenderError(Exception):
    """The frame cannot be rendered: no pixel data, undecodable, or not a displayable image."""


@dataclass(frozen=True, slots=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2); ``function`` is LINEAR, LINEAR_EXACT or SIGMOID."""

    center: float
    width: float
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        if self.function not in WINDOW_FUNCTIONS:
            raise ValueError(f"window function must be one of {', '.join(WINDOW_FUNCTIONS)}")
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError("window center and width must be finite numbers")
        if self.function == "LINEAR" and self.width < 1:
            raise ValueError("a LINEAR window needs width >= 1")
        if self.width <= 0:
            raise ValueError("window width must be > 0")


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame with the group 0028 attributes its display needs."""

    array: np.ndarray  # stored values (grayscale) or RGB/palette indices; rows x cols [x 3]
    pixel_module: Dataset


def read_frame(blob_key: str, frame_index: int, *, size: int | None = None) -> Frame:
    """Decode frame ``frame_index`` (0-based) of a stored instance.

    Raises :class:`RenderError` for an instance without pixel data or a frame that cannot
    be decoded; storage errors (``archive.storage.StorageError``) pass through so callers
    can answer 503 or retry.
    """
    module = Dataset()
    source = BlobFile(blob_key, size)
    try:
        array = pixel_array(
            source,
            ds_out=module,
            index=frame_index,
            specific_tags=[PRESENTATION_LUT_SHAPE],
            raw=False,  # YBR_FULL / YBR_FULL_422 come out as RGB
        )
    except storage.StorageError:
        raise
    except Exception as exc:
        raise RenderError(f"Frame {frame_index + 1} cannot be decoded: {_first_line(exc)}") from exc
    return Frame(_single_frame(array, module), module)


def frame_from_dataset(ds: Dataset, frame_index: int = 0) -> Frame:
    """The same as :func:`read_frame` for an in-memory data set (tests, benchmarks)."""
    try:
        array = pixel_array(ds, index=frame_index, raw=False)
    except Exception as exc:
        raise RenderError(f"Frame {frame_index + 1} cannot be decoded: {_first_line(exc)}") from exc
    return Frame(_single_frame(array, ds), ds)


def _single_frame(array: np.ndarray, module: Dataset) -> np.ndarray:
    samples = int(module.get("SamplesPerPixel", 1) or 1)
    # pixel_array(index=…) returns one frame, but a single-frame image with one sample
    # may keep a leading axis of 1 depending on the decoder.
    while array.ndim > (3 if samples > 1 else 2) and array.shape[0] == 1:
        array = array[0]
    return array


def to_display(frame: Frame, window: Window | None = None) -> np.ndarray:
    """The frame as 8-bit display values: (rows, cols) grayscale or (rows, cols, 3) RGB."""
    ds = frame.pixel_module
    array = frame.array
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric == "PALETTE COLOR":
        return _palette(array, ds)
    if samples > 1 or photometric in COLOUR_PHOTOMETRICS:
        return _colour(array, ds)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise RenderError(f"Photometric Interpretation {photometric} cannot be displayed.")
    values = _modality(array, ds)
    display = _voi(values, ds, window)
    inverse = photometric == "MONOCHROME1"
    if str(ds.get("PresentationLUTShape", "") or "").strip() == "INVERSE":
        inverse = not inverse
    if inverse:
        display = 255.0 - display
    return np.clip(np.rint(display), 0, 255).astype(np.uint8)


def _modality(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """Modality LUT (PS3.3 C.11.1): rescale or LUT sequence → float output units."""
    try:
        return np.asarray(apply_modality_lut(array, ds), dtype=np.float64)
    except Exception as exc:
        raise RenderError(f"The Modality LUT cannot be applied: {_first_line(exc)}") from exc


def _voi(values: np.ndarray, ds: Dataset, window: Window | None) -> np.ndarray:
    """VOI (PS3.3 C.11.2) to 0..255 floats; see the module docstring for the precedence."""
    if window is None:
        window = dataset_window(ds)
    if window is not None:
        return apply_window(values, window)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        try:
            mapped = np.asarray(apply_voi_lut(values.astype(np.int64), ds, index=0, prefer_lut=True))
            bits = int(item.LUTDescriptor[2])
        except Exception as exc:
            raise RenderError(f"The VOI LUT cannot be applied: {_first_line(exc)}") from exc
        top = float(2**bits - 1) if bits > 0 else 1.0
        return mapped.astype(np.float64) / top * 255.0
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low) * 255.0


def dataset_window(ds: Dataset) -> Window | None:
    """The first Window Center/Width of the data set, with its VOI LUT Function, if valid."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    try:
        return Window(float(center), float(width), function if function in WINDOW_FUNCTIONS else "LINEAR")
    except (TypeError, ValueError):
        return None  # an unusable stored window (width 0, empty): fall back to LUT or min/max


def _first(value: Any) -> Any:
    """The first of a multi-valued element (MultiValue), or the value itself."""
    if isinstance(value, str | bytes) or not hasattr(value, "__getitem__"):
        return value
    try:
        return value[0]
    except (IndexError, TypeError):
        return value


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Window values to 0..255 (float) exactly as PS3.3 C.11.2.1.2 and C.11.2.1.3 define."""
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    if window.function == "LINEAR_EXACT":
        out = ((values - c) / w + 0.5) * 255.0
        out[values <= c - w / 2] = 0.0
        out[values > c + w / 2] = 255.0
        return out
    if w == 1:  # the standard's width-1 case: a threshold at the center
        return np.where(values <= c - 0.5, 0.0, 255.0)
    out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    out[values <= c - 0.5 - (w - 1) / 2] = 0.0
    out[values > c - 0.5 + (w - 1) / 2] = 255.0
    return out


def _colour(array: np.ndarray, ds: Dataset) -> np.ndarray:
    if array.ndim != 3 or array.shape[-1] != 3:
        raise RenderError(f"Colour frame of shape {array.shape} cannot be displayed.")
    if array.dtype == np.uint8:
        return array
    bits = int(ds.get("BitsStored", array.dtype.itemsize * 8) or 8)
    scaled = np.rint(array.astype(np.float64) / (2**bits - 1) * 255.0)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _palette(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """PALETTE COLOR (PS3.3 C.7.6.3.1.5): indices through the red/green/blue LUTs."""
    try:
        rgb = np.asarray(apply_color_lut(array, ds))
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    except Exception as exc:
        raise RenderError(f"The palette cannot be applied: {_first_line(exc)}") from exc
    if bits <= 8:
        return rgb.astype(np.uint8)
    return np.clip(np.rint(rgb.astype(np.float64) / (2**bits - 1) * 255.0), 0, 255).astype(np.uint8)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
