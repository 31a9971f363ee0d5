"""Frames → browser images (JPEG/PNG/GIF).

The pixel pipeline follows PS3.4 Annex N (Grayscale Standard Display Function chain):
stored values → Modality LUT (rescale or LUT sequence) → VOI LUT (window from the
request, else from the data set, else the frame's min/max) → presentation (MONOCHROME1
inverted) → 8-bit. Colour data is converted to RGB. pydicom's ``pixels.processing``
functions implement each step; this module chooses and orders them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut, convert_color_space

MEDIA_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}


class RenderError(Exception):
    """The instance or frame cannot be rendered (no pixel data, undecodable, bad parameters)."""


@dataclass(frozen=True, slots=True)
class RenderParams:
    media_type: str = "image/jpeg"
    quality: int = 100
    window_center: float | None = None
    window_width: float | None = None
    rows: int | None = None  # output height (keeps aspect when only one is given)
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 as fractions 0..1


def frame_array(ds: Dataset, frame_index: int) -> np.ndarray:
    """One decoded frame of ``ds`` (which must hold pixel data)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise RenderError("The instance has no pixel data.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not 0 <= frame_index < frames:
        raise RenderError(f"Frame {frame_index + 1} does not exist (the instance has {frames}).")
    try:
        from pydicom.pixels import pixel_array

        array = pixel_array(ds, index=frame_index if frames > 1 else None)
    except Exception as exc:
        raise RenderError(f"The pixel data cannot be decoded: {exc}") from exc
    return array


def to_display(ds: Dataset, array: np.ndarray, params: RenderParams) -> np.ndarray:
    """Apply the display pipeline; returns uint8 (rows, cols) or (rows, cols, 3)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 3 or photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        if photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
            array = convert_color_space(array, photometric, "RGB")
        return _to_uint8_color(array, ds)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        return _to_uint8_color(apply_color_lut(array, ds), ds)
    values = apply_modality_lut(array, ds).astype(np.float64)
    if params.window_center is not None and params.window_width is not None:
        values = _linear_window(values, params.window_center, params.window_width)
    elif ("WindowCenter" in ds and "WindowWidth" in ds) or "VOILUTSequence" in ds:
        voi = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        values = _rescale(voi, *_voi_range(ds, voi))
    else:
        values = _rescale(values, float(values.min()), float(values.max()))
    if photometric == "MONOCHROME1":
        values = 255.0 - values
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _voi_range(ds: Dataset, voi: np.ndarray) -> tuple[float, float]:
    # apply_voi_lut with a window returns values in the output range of the window
    # (0..2^BitsStored-1 style); map that whole range to 0..255.
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    return float(voi.min()), float(voi.max()) if voi.max() > voi.min() else float(voi.min()) + 1


def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window to 0..255."""
    if width <= 1:  # a threshold at the center (the standard's width-1 case)
        return np.where(values <= center - 0.5, 0.0, 255.0)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    out[values <= low] = 0.0
    out[values > high] = 255.0
    return out


def _rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low) * 255.0


def _to_uint8_color(array: np.ndarray, ds: Dataset) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    bits = int(ds.get("BitsStored", 8) or 8)
    return np.clip(array.astype(np.float64) / (2**bits - 1) * 255.0, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, params: RenderParams) -> bytes:
    """uint8 pixels → image bytes in ``params.media_type``, with region and size applied."""
    fmt = MEDIA_FORMATS.get(params.media_type)
    if fmt is None:
        raise RenderError(f"Cannot render {params.media_type}.")
    picture = Image.fromarray(image)
    if params.region is not None:
        x1, y1, x2, y2 = params.region
        width, height = picture.size
        picture = picture.crop((round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)))
    if params.rows or params.columns:
        width, height = picture.size
        new_w = params.columns or max(1, round(width * params.rows / height))  # type: ignore[operator]
        new_h = params.rows or max(1, round(height * params.columns / width))  # type: ignore[operator]
        picture = picture.resize((new_w, new_h), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        picture.save(buffer, format="JPEG", quality=params.quality)
    else:
        picture.save(buffer, format=fmt)
    return buffer.getvalue()


def render(ds: Dataset, frame_index: int, params: RenderParams) -> bytes:
    return encode(to_display(ds, frame_array(ds, frame_index), params), params)
