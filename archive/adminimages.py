"""Where the admin's images come from: one place that builds every image URL.

Today the admin renders through WADO-URI (``/dicomweb/wado``, which accepts the admin
session). When the rendered/thumbnail resources (PS3.18 §10.4, §9.8) land, only these
two functions change.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    label: str
    center: float | None  # None = the instance's own VOI LUT / window
    width: float | None


# Common CT presets (Hounsfield units); "default" uses the instance's own window.
WINDOW_PRESETS: tuple[Window, ...] = (
    Window("default", "Default", None, None),
    Window("soft", "Soft tissue", 40, 400),
    Window("lung", "Lung", -600, 1500),
    Window("bone", "Bone", 400, 1800),
    Window("brain", "Brain", 40, 80),
)
PRESETS_BY_NAME = {window.name: window for window in WINDOW_PRESETS}


def image_url(
    study_uid: str,
    series_uid: str,
    instance_uid: str,
    *,
    frame: int = 1,
    size: int | None = None,
    window: Window | None = None,
) -> str:
    """A JPEG of one frame: ``size`` bounds the longer side (thumbnails), ``window`` the VOI."""
    params: dict[str, str | int | float] = {
        "requestType": "WADO",
        "studyUID": study_uid,
        "seriesUID": series_uid,
        "objectUID": instance_uid,
        "contentType": "image/jpeg",
        "frameNumber": frame,
    }
    if size is not None:
        params["rows"] = size
        params["columns"] = size
    if window is not None and window.center is not None and window.width is not None:
        params["windowCenter"] = window.center
        params["windowWidth"] = window.width
    return f"{reverse('dicomweb:wado-uri')}?{urlencode(params)}"


def thumbnail_url(study_uid: str, series_uid: str, instance_uid: str) -> str:
    """A small JPEG for list rows and series tiles."""
    return image_url(study_uid, series_uid, instance_uid, size=96)
