"""Query parameters of the rendered and thumbnail resources (PS3.18 §8.3.5) → RenderParams.

Each bad value is a 400 that names the parameter. ``quality`` applies to JPEG only
(PNG and GIF are lossless; the parameter is accepted and has no effect there).
"""

from __future__ import annotations

import codecs

from rest_framework.exceptions import ParseError

from rendering.images import RenderParams, Viewport
from rendering.pixels import Window

ANNOTATIONS = ("patient", "technique")
WINDOW_FUNCTIONS = ("LINEAR", "SIGMOID")  # the two PS3.18 §8.3.5.1.4 allows


def _value(query, name: str) -> str | None:
    values = query.getlist(name)
    if len(values) > 1:
        raise ParseError(f"{name} is given more than once.")
    if not values:
        return None
    if values[0].strip() == "":
        raise ParseError(f"{name} is empty.")
    return values[0].strip()


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ParseError(f"{name}: {text!r} is not a whole number.") from exc


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ParseError(f"{name}: {text!r} is not a number.") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise ParseError(f"{name}: {text!r} is not a finite number.")
    return value


def quality(query) -> int:
    text = _value(query, "quality")
    if text is None:
        return 100
    value = _int(text, "quality")
    if not 1 <= value <= 100:
        raise ParseError(f"quality must be 1-100, not {value}.")
    return value


def viewport(query, default: Viewport | None = None) -> Viewport | None:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (sx/sy/sw/sh may be left empty)."""
    text = _value(query, "viewport")
    if text is None:
        return default
    pieces = [p.strip() for p in text.split(",")]
    if len(pieces) not in (2, 6) or not pieces[0] or not pieces[1]:
        raise ParseError(f"viewport must be vw,vh or vw,vh,sx,sy,sw,sh, not {text!r}.")
    numbers = [_int(p, "viewport") if p else None for p in pieces]
    vw, vh = numbers[0], numbers[1]
    sx, sy, sw, sh = (numbers[2:] + [None] * 4)[:4]
    try:
        return Viewport(vw, vh, sx or 0, sy or 0, sw, sh)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ParseError(f"viewport {text!r}: {exc}.") from exc


def window(query) -> Window | None:
    """``center,width[,function]``; function LINEAR (default) or SIGMOID."""
    text = _value(query, "window")
    if text is None:
        return None
    pieces = [p.strip() for p in text.split(",")]
    if len(pieces) not in (2, 3):
        raise ParseError(f"window must be center,width,function (LINEAR or SIGMOID), not {text!r}.")
    function = pieces[2].upper() if len(pieces) == 3 else "LINEAR"
    if function not in WINDOW_FUNCTIONS:
        raise ParseError(f"window function must be LINEAR or SIGMOID, not {pieces[2]!r}.")
    try:
        return Window(_float(pieces[0], "window"), _float(pieces[1], "window"), function)
    except ValueError as exc:
        raise ParseError(f"window {text!r}: {exc}.") from exc


def annotation(query) -> tuple[str, ...]:
    text = _value(query, "annotation")
    if text is None:
        return ()
    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",")))
    unknown = [item for item in items if item not in ANNOTATIONS]
    if unknown:
        raise ParseError(f"annotation may be patient and/or technique, not {', '.join(unknown)!r}.")
    return items


def charset(query) -> str | None:
    """Annotation text is drawn from Unicode, so any known charset is fine; unknown → 400."""
    text = _value(query, "charset")
    if text is None:
        return None
    for name in text.split(","):
        label = name.split(";")[0].strip()
        try:
            codecs.lookup(label)
        except LookupError as exc:
            raise ParseError(f"charset {label!r} is not a known character set.") from exc
    return text


def rendered_params(query, media_type: str) -> tuple[RenderParams, tuple[str, ...]]:
    """The RenderParams for a rendered request and the annotation kinds asked for."""
    charset(query)
    return (
        RenderParams(
            media_type=media_type,
            quality=quality(query),
            window=window(query),
            viewport=viewport(query),
        ),
        annotation(query),
    )
