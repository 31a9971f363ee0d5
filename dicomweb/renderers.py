"""DRF renderers for small DICOM bodies (store responses, errors)."""

from __future__ import annotations

import json

from rest_framework.renderers import BaseRenderer

from dicomweb.media import DICOM_JSON, DICOM_XML, JSON


class DicomJsonRenderer(BaseRenderer):
    media_type = DICOM_JSON
    format = "dicomjson"
    charset = None  # PS3.18: application/dicom+json is always UTF-8

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class PlainJsonRenderer(DicomJsonRenderer):
    """``application/json`` for clients that ask for plain JSON; same body."""

    media_type = JSON
    format = "json"


class DicomXmlRenderer(BaseRenderer):
    """``application/dicom+xml`` (PS3.19 Native DICOM Model) for one data set, e.g. a store response."""

    media_type = DICOM_XML
    format = "dicomxml"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        from dicomweb.dicomxml import json_to_xml

        if isinstance(data, dict) and set(data) == {"detail"}:  # an error body stays JSON-shaped text
            data = {"00000902": {"vr": "LO", "Value": [str(data["detail"])]}}
        return json_to_xml(data)
