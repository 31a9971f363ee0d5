"""Frames come out of S3 by ranged reads: one frame never reads the rest of the object."""

from __future__ import annotations

import numpy as np
import pytest

from archive import storage
from archive.models import Instance
from tests.dicomweb.test_stow import stow
from tests.dicomweb.test_wado import instance_path
from tests.factories import make_dataset, to_part10

pytestmark = pytest.mark.real_services


def test_one_frame_of_a_large_multiframe_instance_reads_only_that_frame(api, seaweedfs, monkeypatch):
    # 48 frames of 512x512x16 bit = 24 MiB of pixel data.
    ds = make_dataset(frames=48, rows=512, columns=512, pixel_seed=3)
    assert stow(api, [to_part10(ds)]).status_code == 200
    row = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    assert type(storage._backend()).__name__ == "S3Storage"

    requested: list[tuple[str, int, int | None]] = []
    real_read_range, real_open_stream = storage.read_range, storage.open_stream

    def spy_read_range(key, start, length):  # records, then does the real S3 ranged GET
        requested.append(("range", start, length))
        return real_read_range(key, start, length)

    def spy_open_stream(key, **kwargs):
        requested.append(("stream", kwargs.get("start", 0), kwargs.get("end")))
        return real_open_stream(key, **kwargs)

    monkeypatch.setattr(storage, "read_range", spy_read_range)
    monkeypatch.setattr(storage, "open_stream", spy_open_stream)
    response = api.get(f"{instance_path(ds)}/frames/40", headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200
    frame = 512 * 512 * 2
    expected = np.frombuffer(ds.PixelData, dtype=np.uint8)[39 * frame : 40 * frame].tobytes()
    assert response.content == expected
    assert requested == [("range", row.frame_table["offset"] + 39 * frame, frame)]
