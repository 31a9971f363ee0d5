"""WADO-RS through a real HTTP client against the running server (both tiers)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from archive.models import Instance
from dicomweb import multipart
from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = pytest.mark.both_tiers

EVRLE = "1.2.840.10008.1.2.1"


def parts_of(response) -> list[multipart.Part]:
    content_type = response.headers["content-type"]
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    found = []
    for part in multipart.iter_parts(io.BytesIO(response.content), boundary):
        found.append(
            multipart.Part(headers=dict(part.headers), file=io.BytesIO(part.file.read()), size=part.size)
        )
    return found


def instance_path(ds) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


@pytest.fixture
def stored(api):
    """A study with two series (3 + 1 instances) and a 4-frame instance."""
    study_uid = new_uid()
    series_uid = new_uid()
    datasets = [
        make_dataset(study_uid=study_uid, series_uid=series_uid, InstanceNumber=n, pixel_seed=n)
        for n in (1, 2, 3)
    ]
    datasets.append(make_dataset(study_uid=study_uid, frames=4, rows=8, columns=8, pixel_seed=9))
    response = stow(api, [to_part10(ds) for ds in datasets])
    assert response.status_code == 200
    return datasets


def test_instance_as_stored_is_byte_exact(api, stored):
    ds = stored[0]
    response = api.get(instance_path(ds), headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/dicom; transfer-syntax={EVRLE}"
    assert response.content == b"\x00" * 128 + to_part10(ds)[128:]


def test_study_retrieve_is_multipart_of_every_instance(api, stored):
    response = api.get(
        f"/dicomweb/studies/{stored[0].StudyInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    parts = parts_of(response)
    assert len(parts) == 4
    uids = {pydicom.dcmread(p.file).SOPInstanceUID for p in parts}
    assert uids == {ds.SOPInstanceUID for ds in stored}
    assert all(p.content_type == f"application/dicom; transfer-syntax={EVRLE}" for p in parts)


def test_series_retrieve_with_default_accept(api, stored):
    ds = stored[0]
    response = api.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}")
    assert response.status_code == 200
    parts = parts_of(response)
    assert [pydicom.dcmread(p.file).InstanceNumber for p in parts] == [1, 2, 3]


@pytest.mark.parametrize(
    "accept", ["*/*", 'multipart/related; type="*/*"', "multipart/related; type=*/*; transfer-syntax=*"]
)
def test_wildcards_resolve_to_the_default(api, stored, accept):
    response = api.get(f"/dicomweb/studies/{stored[0].StudyInstanceUID}", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="application/dicom"')


def test_frames_are_byte_exact(api, stored):
    ds = stored[3]
    response = api.get(
        f"{instance_path(ds)}/frames/2,4",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert response.status_code == 200
    parts = parts_of(response)
    frame = 8 * 8 * 2
    assert [p.file.read() for p in parts] == [
        ds.PixelData[frame : 2 * frame],
        ds.PixelData[3 * frame : 4 * frame],
    ]
    assert parts[0].content_type == f"application/octet-stream; transfer-syntax={EVRLE}"


def test_single_frame_single_part(api, stored):
    ds = stored[3]
    response = api.get(f"{instance_path(ds)}/frames/1", headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == ds.PixelData[:128]


@pytest.mark.parametrize("frames,status", [("0", 400), ("1,x", 400), ("5", 404), ("1,5", 404), ("-1", 400)])
def test_bad_frame_lists(api, stored, frames, status):
    response = api.get(f"{instance_path(stored[3])}/frames/{frames}")
    assert response.status_code == status


def test_metadata_has_bulkdata_uris_and_etag(api, stored, live_url):
    ds = stored[0]
    response = api.get(f"{instance_path(ds)}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    (item,) = response.json()
    assert item["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert item["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{live_url}{instance_path(ds)}/bulkdata/7FE00010"}
    etag = response.headers["etag"]
    again = api.get(f"{instance_path(ds)}/metadata", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_series_metadata_etag_changes_when_an_instance_is_added(api, stored):
    ds = stored[0]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata"
    first = api.get(url)
    assert len(first.json()) == 3
    assert stow(api, [make_instance_in(ds)]).status_code == 200
    second = api.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert len(second.json()) == 4
    assert second.headers["etag"] != first.headers["etag"]


def make_instance_in(ds):
    return to_part10(
        make_dataset(study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, InstanceNumber=4)
    )


def test_bulkdata_uri_resolves_with_range(api, stored):
    ds = stored[0]
    (item,) = api.get(f"{instance_path(ds)}/metadata").json()
    uri = item["7FE00010"]["BulkDataURI"]
    whole = api.get(uri, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200
    assert whole.content == ds.PixelData
    partial = api.get(uri, headers={"Accept": "application/octet-stream", "Range": "bytes=10-19"})
    assert partial.status_code == 206
    assert partial.content == ds.PixelData[10:20]
    assert partial.headers["content-range"] == f"bytes 10-19/{len(ds.PixelData)}"
    assert api.get(uri, headers={"Range": "bytes=999999-"}).status_code == 416


def test_default_retrieve_transcodes_implicit_to_explicit(api):
    ds = make_dataset()
    assert stow(api, [to_part10(ds, transfer_syntax="1.2.840.10008.1.2")]).status_code == 200
    response = api.get(instance_path(ds), headers={"Accept": "application/dicom"})
    assert response.status_code == 200
    out = pydicom.dcmread(io.BytesIO(response.content))
    assert out.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(out.pixel_array, ds.pixel_array)


@pytest.mark.parametrize(
    "path,status",
    [
        ("/dicomweb/studies/bad_uid!", 400),
        ("/dicomweb/studies/1.2.3/series/bad!uid", 400),
        ("/dicomweb/studies/1.2.3", 404),
        ("/dicomweb/studies/1.2.3/metadata", 404),
    ],
)
def test_bad_and_missing_paths(api, stored, path, status):
    assert api.get(path).status_code == status


def test_instance_under_wrong_study_is_404(api, stored):
    ds = stored[0]
    assert (
        api.get(
            f"/dicomweb/studies/{new_uid()}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "accept", ["image/png", 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4']
)
def test_unsupported_accept_is_406(api, stored, accept):
    assert api.get(instance_path(stored[0]), headers={"Accept": accept}).status_code == 406


def test_accept_query_parameter_wins(api, stored):
    response = api.get(
        f"{instance_path(stored[0])}/metadata?accept=application/dicom%2Bjson",
        headers={"Accept": "image/jpeg"},
    )
    assert response.status_code == 200


def test_unauthenticated_retrieve_is_401(anonymous, stored):
    assert anonymous.get(instance_path(stored[0])).status_code == 401


def test_instance_count_unchanged_by_reads(api, stored):
    api.get(f"/dicomweb/studies/{stored[0].StudyInstanceUID}")
    assert Instance.objects.count() == 4


@pytest.mark.parametrize("path", ["/dicomweb/nothing", "/dicomweb/studies/1.2.3/series/1.2.4/whatever"])
def test_unknown_resource_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert "No DICOMweb resource" in response.json()["detail"]


def test_wrong_method_is_405_with_allow(api, stored):
    response = api.post(f"{instance_path(stored[0])}/metadata")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test_xml_metadata_is_well_formed_and_equivalent_to_json(api, stored):
    from xml.etree import ElementTree

    from dicomweb.dicomxml import xml_to_json

    ds = stored[0]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata"
    as_json = api.get(url).json()
    response = api.get(url, headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="application/dicom+xml"')
    documents = [part.file.read() for part in parts_of(response)]
    assert len(documents) == 3
    for document in documents:
        ElementTree.fromstring(document)  # well-formed
    assert [xml_to_json(d) for d in documents] == as_json
    assert response.headers["etag"] != api.get(url).headers["etag"]  # one ETag per representation
