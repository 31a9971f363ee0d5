"""STOW of metadata + bulk data (JSON or XML), and store responses in XML."""

from __future__ import annotations

import io
import json
from xml.etree import ElementTree

import numpy as np
import pydicom
import pytest

from archive.models import Instance
from dicomweb import multipart
from tests.dicomweb.test_stow import failed, referenced, stow, value
from tests.dicomweb.test_wado import instance_path
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers

# ruff: noqa: E501  (the XML template below mirrors the spec's PS3.19 sample line for line)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" * 50

XML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xml:space="preserve">
  <DicomAttribute keyword="SOPClassUID" tag="00080016" vr="UI"><Value number="1">1.2.840.10008.5.1.4.1.1.104.1</Value></DicomAttribute>
  <DicomAttribute keyword="SOPInstanceUID" tag="00080018" vr="UI"><Value number="1">{instance}</Value></DicomAttribute>
  <DicomAttribute keyword="Modality" tag="00080060" vr="CS"><Value number="1">DOC</Value></DicomAttribute>
  <DicomAttribute keyword="PatientName" tag="00100010" vr="PN"/>
  <DicomAttribute keyword="PatientID" tag="00100020" vr="LO"/>
  <DicomAttribute keyword="StudyInstanceUID" tag="0020000D" vr="UI"><Value number="1">{study}</Value></DicomAttribute>
  <DicomAttribute keyword="SeriesInstanceUID" tag="0020000E" vr="UI"><Value number="1">{series}</Value></DicomAttribute>
  <DicomAttribute keyword="EncapsulatedDocument" tag="00420011" vr="OB"><BulkData uri="{uri}"/></DicomAttribute>
  <DicomAttribute keyword="MIMETypeOfEncapsulatedDocument" tag="00420012" vr="LO"><Value number="1">application/pdf</Value></DicomAttribute>
</NativeDicomModel>
"""


def post_parts(api, parts: list[tuple[dict, bytes]], part_type: str, accept: str = "application/dicom+json"):
    boundary = multipart.new_boundary()
    body = b"".join(multipart.encode_parts(((h, [b]) for h, b in parts), boundary))
    return api.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="{part_type}"; boundary={boundary}',
            "Accept": accept,
        },
    )


def test_pdf_with_xml_metadata_as_in_the_sample(api):
    study, series, instance, uri = new_uid(), new_uid(), new_uid(), f"bulk{new_uid()}"
    xml = XML_TEMPLATE.format(study=study, series=series, instance=instance, uri=uri).encode()
    response = post_parts(
        api,
        [
            ({"Content-Type": "application/dicom+xml"}, xml),
            ({"Content-Type": "application/pdf", "Content-Location": uri}, PDF),
        ],
        "application/dicom+xml",
        accept="application/dicom+xml",
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+xml"
    root = ElementTree.fromstring(response.content)
    assert instance in response.text and root.tag.endswith("NativeDicomModel")
    # It retrieves like any other instance, with the PDF inside.
    path = f"/dicomweb/studies/{study}/series/{series}/instances/{instance}"
    stored = pydicom.dcmread(
        io.BytesIO(api.get(path, headers={"Accept": "application/dicom; transfer-syntax=*"}).content)
    )
    assert stored.EncapsulatedDocument == PDF
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_json_metadata_with_native_pixel_data(api):
    ds = make_dataset(rows=8, columns=8)
    metadata = ds.to_json_dict(bulk_data_threshold=16, bulk_data_element_handler=lambda element: "pixels-1")
    response = post_parts(
        api,
        [
            ({"Content-Type": "application/dicom+json"}, json.dumps([metadata]).encode()),
            ({"Content-Type": "application/octet-stream", "Content-Location": "pixels-1"}, ds.PixelData),
        ],
        "application/dicom+json",
    )
    assert response.status_code == 200, response.text
    out = pydicom.dcmread(
        io.BytesIO(api.get(instance_path(ds), headers={"Accept": "application/dicom"}).content)
    )
    assert np.array_equal(out.pixel_array, np.frombuffer(ds.PixelData, dtype="<u2").reshape(8, 8))
    # frames are addressable like any other stored instance
    assert Instance.objects.get(instance_uid=ds.SOPInstanceUID).frame_table["kind"] == "native"


def test_json_metadata_with_jpeg2000_pixel_data(api):
    pytest.importorskip("openjpeg")
    source = make_dataset(rows=32, columns=32)
    source.file_meta = pydicom.dataset.FileMetaDataset()
    source.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    source.compress("1.2.840.10008.1.2.4.90", encoding_plugin="pylibjpeg")
    frame = next(pydicom.encaps.generate_frames(source.PixelData, number_of_frames=1))
    reference = source.pixel_array
    del source.PixelData
    metadata = source.to_json_dict()
    metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": "frame-1"}
    response = post_parts(
        api,
        [
            ({"Content-Type": "application/dicom+json"}, json.dumps(metadata).encode()),
            ({"Content-Type": "image/jp2", "Content-Location": "frame-1"}, frame),
        ],
        "application/dicom+json",
    )
    assert response.status_code == 200, response.text
    row = Instance.objects.get(instance_uid=source.SOPInstanceUID)
    assert row.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"
    out = pydicom.dcmread(
        io.BytesIO(api.get(instance_path(source), headers={"Accept": "application/dicom"}).content)
    )
    assert np.array_equal(out.pixel_array, reference)


def test_missing_bulk_part_fails_that_instance_only(api):
    ds = make_dataset(rows=8, columns=8)
    good = make_dataset(rows=8, columns=8)
    broken = ds.to_json_dict(bulk_data_threshold=16, bulk_data_element_handler=lambda element: "nowhere")
    fine = good.to_json_dict(bulk_data_threshold=16, bulk_data_element_handler=lambda element: "here")
    response = post_parts(
        api,
        [
            ({"Content-Type": "application/dicom+json"}, json.dumps([broken, fine]).encode()),
            ({"Content-Type": "application/octet-stream", "Content-Location": "here"}, good.PixelData),
        ],
        "application/dicom+json",
    )
    assert response.status_code == 202
    body = response.json()
    (failure,) = failed(body)
    assert value(failure, "00081197") == 43264
    assert "nowhere" in failure["00741048"]["Value"][0]["00000902"]["Value"][0]
    assert [value(i, "00081155") for i in referenced(body)] == [good.SOPInstanceUID]


def test_garbage_metadata_part_fails_alone(api):
    response = post_parts(
        api, [({"Content-Type": "application/dicom+json"}, b"{not json")], "application/dicom+json"
    )
    assert response.status_code == 409
    assert value(failed(response.json())[0], "00081197") == 43264


def test_part10_store_response_in_xml(api):
    ds = make_dataset()
    response = stow(api, [to_part10(ds)], Accept="application/dicom+xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+xml"
    assert ds.SOPInstanceUID.encode() in response.content
