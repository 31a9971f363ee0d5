"""The third-party dicomweb-client library against the running server (real interop)."""

from __future__ import annotations

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import FileMetaDataset

from tests.factories import make_dataset, new_uid

pytestmark = pytest.mark.both_tiers


@pytest.fixture
def client(api, live_url):
    return DICOMwebClient(url=f"{live_url}/dicomweb", headers={"Authorization": api.headers["Authorization"]})


def test_store_then_retrieve_instance_frames_and_metadata(client):
    ds = make_dataset(frames=3, rows=8, columns=8, pixel_seed=5)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    # dicomweb-client writes the data set with dcmwrite: File Meta but no preamble.
    result = client.store_instances([ds])
    assert result.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID

    instance = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert instance.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(instance.pixel_array, ds.pixel_array)

    frames = client.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1, 3]
    )
    frame = 8 * 8 * 2
    assert frames == [ds.PixelData[:frame], ds.PixelData[2 * frame : 3 * frame]]

    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert "BulkDataURI" in metadata["7FE00010"]

    series = client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert [item["00080018"]["Value"][0] for item in series] == [ds.SOPInstanceUID]

    study = client.retrieve_study(ds.StudyInstanceUID)
    assert [item.SOPInstanceUID for item in study] == [ds.SOPInstanceUID]


def test_bearer_none_is_refused(live_url):
    # dicomweb-client's CLI sends "Bearer None" when no token is configured.
    client = DICOMwebClient(url=f"{live_url}/dicomweb", headers={"Authorization": "Bearer None"})
    with pytest.raises(Exception) as caught:
        client.retrieve_study_metadata("1.2.3")
    assert "401" in str(caught.value)


def test_search_functions_including_fuzzy(client):
    study_uid, series_uid = new_uid(), new_uid()
    datasets = []
    for number, (name, modality) in enumerate(
        [("Doe^John", "CT"), ("Doe^John", "CT"), ("Roe^Jane", "MR")], 1
    ):
        ds = make_dataset(
            study_uid=study_uid if name == "Doe^John" else None,
            series_uid=series_uid if name == "Doe^John" else None,
            patient_name=name,
            modality=modality,
            InstanceNumber=number,
            patient_id=name[:3].upper(),
        )
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        datasets.append(ds)
    client.store_instances(datasets)

    studies = client.search_for_studies(search_filters={"PatientName": "jo do"}, fuzzymatching=True)
    assert [s["0020000D"]["Value"][0] for s in studies] == [study_uid]
    assert client.search_for_studies(search_filters={"PatientName": "ohn"}, fuzzymatching=True) == []
    studies = client.search_for_studies(search_filters={"PatientID": "DOE"}, fields=["StudyDescription"])
    assert studies[0]["00081030"]["Value"] == ["Synthetic study"]
    series = client.search_for_series(study_uid)
    assert [s["00080060"]["Value"][0] for s in series] == ["CT"]
    instances = client.search_for_instances(study_uid, search_filters={"InstanceNumber": "2"})
    assert [i["00080018"]["Value"][0] for i in instances] == [datasets[1].SOPInstanceUID]
    everything = client.search_for_series(search_filters={"Modality": "MR"})
    assert [s["0020000E"]["Value"][0] for s in everything] == [datasets[2].SeriesInstanceUID]
