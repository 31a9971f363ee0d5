"""Display pixels → browser images (JPEG, PNG, GIF): viewport, annotation, quality.

``rendering.pixels`` turns a stored frame into 8-bit display values; this module crops,
scales, burns in annotation text and encodes with Pillow. It knows nothing of HTTP or
the index: callers (the DICOMweb views, the thumbnail task) pass what to draw.

Viewport (PS3.18 §8.3.5.1.3), ``vw,vh[,sx,sy,sw,sh]``: the source region starting at
(``sx``, ``sy``) of ``sw`` x ``sh`` source pixels (the whole frame when omitted; a
negative ``sw``/``sh`` flips that axis) is scaled to fit inside ``vw`` x ``vh`` with its
aspect ratio kept, so one side of the result may be shorter than asked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rendering.pixels import Frame, RenderError, Window, read_frame, to_display

__all__ = [
    "MEDIA_FORMATS",
    "RenderError",
    "RenderParams",
    "Viewport",
    "ViewportError",
    "Window",
    "encode",
    "render",
]

MEDIA_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
MAX_OUTPUT_SIDE = 8192  # larger viewports are refused (400) rather than allocated


class ViewportError(RenderError):
    """The viewport's source region lies outside the frame (a client error: 400)."""


@dataclass(frozen=True, slots=True)
class Viewport:
    """Output size and optional source region (pixels of the frame)."""

    width: int
    height: int
    sx: int = 0
    sy: int = 0
    sw: int | None = None  # None: to the right edge; negative: flipped horizontally
    sh: int | None = None

    def __post_init__(self) -> None:
        if not (1 <= self.width <= MAX_OUTPUT_SIDE and 1 <= self.height <= MAX_OUTPUT_SIDE):
            raise ValueError(f"viewport width and height must be 1..{MAX_OUTPUT_SIDE}")
        if self.sx < 0 or self.sy < 0:
            raise ValueError("viewport sx and sy must be >= 0")
        if self.sw == 0 or self.sh == 0:
            raise ValueError("viewport sw and sh must not be 0")


@dataclass(frozen=True, slots=True)
class RenderParams:
    """Everything a rendering request may ask for (PS3.18 §8.3.5; WADO-URI §9)."""

    media_type: str = "image/jpeg"
    quality: int = 100  # JPEG only (PS3.18 default: the origin server's choice; ours is 100)
    window: Window | None = None
    viewport: Viewport | None = None
    annotation: tuple[str, ...] = ()  # lines of text to burn in (top left)
    # WADO-URI (PS3.18 §9.1.2.1): region as fractions x1,y1,x2,y2, then rows/columns.
    rows: int | None = None
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None

    # Compatibility with the first WADO-URI pipeline's field names.
    @property
    def window_center(self) -> float | None:
        return self.window.center if self.window else None

    @property
    def window_width(self) -> float | None:
        return self.window.width if self.window else None


def render(blob_key: str, frame_index: int, params: RenderParams, *, size: int | None = None) -> bytes:
    """Frame ``frame_index`` (0-based) of a stored instance as image bytes."""
    return render_frame(read_frame(blob_key, frame_index, size=size), params)


def render_frame(frame: Frame, params: RenderParams) -> bytes:
    return encode(to_display(frame, params.window), params)


def encode(image: np.ndarray, params: RenderParams) -> bytes:
    """uint8 display pixels → image bytes in ``params.media_type`` with geometry and text."""
    fmt = MEDIA_FORMATS.get(params.media_type)
    if fmt is None:
        raise RenderError(f"Cannot render {params.media_type}.")
    picture = Image.fromarray(image)
    picture = _geometry(picture, params)
    if params.annotation:
        picture = _annotate(picture, params.annotation)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        # 4:4:4 at high quality so text and fine detail keep their edges.
        subsampling = 0 if params.quality >= 90 else 2
        picture.save(buffer, format="JPEG", quality=params.quality, subsampling=subsampling)
    elif fmt == "PNG":
        picture.save(buffer, format="PNG", compress_level=1)  # speed over a few % of size
    else:
        picture.save(buffer, format="GIF")
    return buffer.getvalue()


def _geometry(picture: Image.Image, params: RenderParams) -> Image.Image:
    width, height = picture.size
    if params.region is not None:
        x1, y1, x2, y2 = params.region
        picture = picture.crop((round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)))
        width, height = picture.size
    if params.rows or params.columns:
        new_w = params.columns or max(1, round(width * params.rows / height))  # type: ignore[operator]
        new_h = params.rows or max(1, round(height * params.columns / width))  # type: ignore[operator]
        picture = picture.resize((new_w, new_h), Image.Resampling.LANCZOS)
    if params.viewport is not None:
        picture = apply_viewport(picture, params.viewport)
    return picture


def apply_viewport(picture: Image.Image, viewport: Viewport) -> Image.Image:
    """Crop the source region (flipping on negative sizes), then fit into vw x vh."""
    width, height = picture.size
    if viewport.sx >= width or viewport.sy >= height:
        raise ViewportError(f"The viewport region starts outside the {width}x{height} frame.")
    sw = viewport.sw if viewport.sw is not None else width - viewport.sx
    sh = viewport.sh if viewport.sh is not None else height - viewport.sy
    x0, x1 = sorted((viewport.sx, viewport.sx + sw))
    y0, y1 = sorted((viewport.sy, viewport.sy + sh))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        raise ViewportError("The viewport region does not overlap the frame.")
    if (x0, y0, x1, y1) != (0, 0, width, height):
        picture = picture.crop((x0, y0, x1, y1))
    if sw < 0:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    src_w, src_h = picture.size
    scale = min(viewport.width / src_w, viewport.height / src_h)
    size = (max(1, round(src_w * scale)), max(1, round(src_h * scale)))
    if size != picture.size:
        # BOX when shrinking a lot (thumbnails: fast and alias-free), LANCZOS otherwise.
        method = Image.Resampling.BOX if scale < 0.5 else Image.Resampling.LANCZOS
        picture = picture.resize(size, method)
    return picture


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap font
        return ImageFont.load_default()


def _annotate(picture: Image.Image, lines: tuple[str, ...]) -> Image.Image:
    """Burn ``lines`` into the top-left corner, white on a dark outline (legible on any image)."""
    if picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    size = max(9, min(24, picture.size[1] // 24))
    font = _font(size)
    draw = ImageDraw.Draw(picture)
    fill = 255 if picture.mode == "L" else (255, 255, 255)
    outline = 0 if picture.mode == "L" else (0, 0, 0)
    y = 2
    for line in lines:
        draw.text((3, y), line, fill=fill, font=font, stroke_width=1, stroke_fill=outline)
        y += size + 3
    return picture
