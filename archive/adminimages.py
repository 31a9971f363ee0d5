"""Where the admin's images come from: one place that builds every image URL.

The admin shows DICOMweb's own rendered and thumbnail resources (PS3.18 §10.4,
Supplement 203), which accept the admin session: the viewer asks for one frame
``…/frames/{n}/rendered`` with the chosen window, lists ask for ``…/thumbnail`` at a
size the thumbnail cache keeps (``rendering.thumbnails``), so list pages are served
from stored thumbnails after the first view.
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
    instance = reverse(
        "dicomweb:frames-rendered",
        kwargs={
            "study_uid": study_uid,
            "series_uid": series_uid,
            "instance_uid": instance_uid,
            "frames": frame,
        },
    )
    params: dict[str, str] = {"accept": "image/jpeg"}
    if size is not None:
        params["viewport"] = f"{size},{size}"
    if window is not None and window.center is not None and window.width is not None:
        params["window"] = f"{window.center:g},{window.width:g},LINEAR"
    return f"{instance}?{urlencode(params)}"


THUMBNAIL_SIZE = 128  # one of the sizes rendering.thumbnails stores


def thumbnail_url(study_uid: str, series_uid: str, instance_uid: str) -> str:
    """A small JPEG for list rows and series tiles (stored after its first request)."""
    url = reverse(
        "dicomweb:instance-thumbnail",
        kwargs={"study_uid": study_uid, "series_uid": series_uid, "instance_uid": instance_uid},
    )
    return f"{url}?{urlencode({'accept': 'image/jpeg', 'viewport': f'{THUMBNAIL_SIZE},{THUMBNAIL_SIZE}'})}"
