"""An instance's DICOM JSON (PS3.18 Annex F) for the index, without reading bulk data.

Bulk elements — every OB, OD, OF, OL, OV, OW and UN value, pixel data, and any value
large enough that the reader left it on disk — become ``BulkDataURI`` placeholders,
never inline. The stored placeholder is *relative* (``bulkdata/<tag path>``); the
retrieve side prefixes the instance's absolute URL, so a moved server or a proxy never
leaves stale URIs in the index.

The walk goes element by element over the raw data set so deferred values are never
loaded; each ordinary element is encoded by pydicom's own ``to_json_dict``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from archive.fastjson import encode_raw
from archive.reader import InstanceHeader

logger = logging.getLogger(__name__)

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULKDATA_PREFIX = "bulkdata/"

DicomJson = dict[str, dict[str, Any]]


def tag_key(tag: int) -> str:
    return f"{int(tag):08X}"


def _vr_of(elem: DataElement | RawDataElement) -> str:
    vr = elem.VR
    if vr:
        return str(vr)
    try:
        return dictionary_VR(elem.tag)
    except KeyError:
        return "UN"


def _charset_of(ds: Dataset, inherited: str) -> str:
    """The item's SpecificCharacterSet as one backslash-joined string (inherited if absent)."""
    if 0x00080005 not in ds:
        return inherited
    value = ds.get_item(0x00080005, keep_deferred=True).value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    elif value is not None and not isinstance(value, str):
        value = "\\".join(str(v) for v in value)
    return (value or "").strip(" \x00")


def dataset_to_json(ds: Dataset, path: str = "", *, charset: str = "", fast: bool = True) -> DicomJson:
    """DICOM JSON of ``ds`` with BulkDataURI placeholders; never loads deferred values."""
    out: DicomJson = {}
    charset = _charset_of(ds, charset)
    for tag in ds.keys():  # noqa: SIM118  (keys() does not convert raw elements)
        if tag.element == 0 or tag.group == 0x0002:
            continue  # group lengths are not part of the JSON model; file meta is separate
        raw = ds.get_item(tag, keep_deferred=True)
        vr = _vr_of(raw)
        key = tag_key(tag)
        here = f"{path}{key}"
        deferred = isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, None)
        if vr in BULK_VRS or deferred:
            length = raw.length if isinstance(raw, RawDataElement) else len(raw.value or b"")
            if deferred or length:
                out[key] = {
                    "vr": "OB" if vr == "UN" and not deferred else vr,
                    "BulkDataURI": BULKDATA_PREFIX + here,
                }
                if vr == "UN":
                    out[key]["vr"] = "UN"
            else:
                out[key] = {"vr": vr}
            continue
        if fast and isinstance(raw, RawDataElement) and vr != "SQ":
            encoded = encode_raw(raw, vr, charset)
            if encoded is not None:
                out[key] = encoded
                continue
        try:
            elem = ds[tag]
        except Exception as exc:  # a value pydicom cannot convert: keep the element, say so
            logger.debug("cannot convert %s: %s", here, exc)
            out[key] = {"vr": vr}
            continue
        if elem.VR == "SQ":
            items = [
                dataset_to_json(item, f"{here}/{index}/", charset=charset, fast=fast)
                for index, item in enumerate(elem.value or [])
            ]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        try:
            out[key] = elem.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=1 << 62)
        except Exception as exc:
            logger.debug("cannot encode %s as JSON: %s", here, exc)
            out[key] = _fallback_json(elem)
    return out


def _fallback_json(elem: DataElement) -> dict[str, Any]:
    """Keep what can be said about a value pydicom refuses to encode (e.g. bad IS/DS)."""
    value = elem.value
    if value in (None, "", b""):
        return {"vr": elem.VR}
    values = (
        list(value)
        if isinstance(value, list | tuple)
        or (hasattr(value, "__iter__") and not isinstance(value, str | bytes))
        else [value]
    )
    return {"vr": elem.VR, "Value": [str(v) for v in values]}


def instance_json(header: InstanceHeader, *, fast: bool = True) -> DicomJson:
    """The stored metadata of an instance: its data set plus a placeholder for pixel data."""
    data = dataset_to_json(header.dataset, fast=fast)
    table = header.frame_table
    if table.kind != "none":
        tag = table.pixel_data_tag or 0x7FE00010
        vr = table.pixel_data_vr or "OW"
        data[tag_key(tag)] = {"vr": vr, "BulkDataURI": BULKDATA_PREFIX + tag_key(tag)}
    return dict(sorted(data.items()))


def first_value(data: DicomJson, keyword_tag: str) -> Any:
    element = data.get(keyword_tag)
    if not element:
        return None
    values = element.get("Value")
    return values[0] if values else None
