"""Synthetic DICOM instances for tests and benchmarks."""

from __future__ import annotations

import io
import uuid
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from dicomweb import multipart


def new_uid() -> str:
    return generate_uid(prefix="1.2.826.0.1.3680043.10.1455.9.")


def make_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    patient_id: str | None = "PAT-1",
    patient_name: str = "Doe^John",
    rows: int = 16,
    columns: int = 16,
    frames: int = 1,
    modality: str = "CT",
    sop_class_uid: str = CTImageStorage,
    pixel_seed: int = 0,
    **attributes: Any,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = instance_uid or new_uid()
    ds.StudyInstanceUID = study_uid or new_uid()
    ds.SeriesInstanceUID = series_uid or new_uid()
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-1"
    ds.StudyDescription = "Synthetic study"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.StudyID = "1"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Synthetic series"
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(pixel_seed)
    pixels = rng.integers(0, 4096, size=(frames, rows, columns), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def to_part10(
    ds: Dataset, *, transfer_syntax: str = ExplicitVRLittleEndian, preamble: bytes | None = None
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(
        buffer,
        enforce_file_format=True,
        implicit_vr=transfer_syntax == ImplicitVRLittleEndian,
        little_endian=True,
    )
    data = buffer.getvalue()
    if preamble is not None:
        data = preamble.ljust(128, b"\x00")[:128] + data[128:]
    return data


def make_instance(**kwargs: Any) -> bytes:
    transfer_syntax = kwargs.pop("transfer_syntax", ExplicitVRLittleEndian)
    preamble = kwargs.pop("preamble", None)
    return to_part10(make_dataset(**kwargs), transfer_syntax=transfer_syntax, preamble=preamble)


def multipart_body(
    parts: list[bytes], *, content_type: str = "application/dicom", boundary: str | None = None
) -> tuple[bytes, str]:
    """A STOW request body and its Content-Type header."""
    boundary = boundary or uuid.uuid4().hex
    body = b"".join(
        multipart.encode_parts((({"Content-Type": content_type}, [part]) for part in parts), boundary)
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'
