"""Rendered resources and thumbnails through the running server (PS3.18 §10.4.1.1.3, Sup 203)."""

from __future__ import annotations

import email
import io

import numpy as np
import pytest
from PIL import Image

from archive import storage
from archive.models import Instance
from archive.tasks import derived_prefix
from rendering import thumbnails
from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, new_uid, to_part10

pytestmark = [pytest.mark.both_tiers, pytest.mark.filterwarnings("ignore::UserWarning")]


def ramp(rows: int = 32, columns: int = 32, **attributes):
    """A CT whose stored values are 0..(rows*columns-1)*4, intercept -1024."""
    ds = make_dataset(rows=rows, columns=columns, **attributes)
    values = (np.arange(rows * columns, dtype=np.uint16) * 4).reshape(rows, columns)
    ds.PixelData = values.tobytes()
    return ds


def url(ds, suffix: str = "") -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}{suffix}"
    )


def image(response) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(response.content)))


@pytest.fixture(autouse=True)
def thumbnails_on_store(settings):
    settings.ARCHWAY_THUMBNAILS_ON_STORE = True  # the default with a broker (tasks run eagerly here)


@pytest.fixture
def ct(api):
    ds = ramp(WindowCenter=40, WindowWidth=400)
    assert stow(api, [to_part10(ds)]).status_code == 200
    return ds


def test_rendered_instance_is_a_jpeg_by_default(api, ct):
    response = api.get(url(ct, "/rendered"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(response.content))
    assert (picture.format, picture.size) == ("JPEG", (32, 32))


def test_rendered_png_shows_the_window_asked_for(api, ct):
    response = api.get(url(ct, "/rendered"), params={"window": "0,1,LINEAR"}, headers={"Accept": "image/png"})
    assert response.status_code == 200
    hounsfield = ct.pixel_array.astype(int) - 1024
    assert np.array_equal(image(response), np.where(hounsfield > -0.5, 255, 0))


def test_rendered_png_uses_the_stored_window_without_a_parameter(api, ct):
    shown = image(api.get(url(ct, "/rendered"), params={"accept": "image/png"}))
    hounsfield = ct.pixel_array.astype(float) - 1024
    expected = np.clip(((hounsfield - 39.5) / 399 + 0.5) * 255, 0, 255)
    expected[hounsfield <= 39.5 - 199.5] = 0
    expected[hounsfield > 39.5 + 199.5] = 255
    assert np.array_equal(shown, np.rint(expected).astype(np.uint8))


def test_quality_changes_the_jpeg(api, ct):
    best = api.get(url(ct, "/rendered"), params={"quality": "100"})
    worst = api.get(url(ct, "/rendered"), params={"quality": "1"})
    assert best.status_code == worst.status_code == 200
    assert len(worst.content) < len(best.content)


def test_gif_is_offered(api, ct):
    response = api.get(url(ct, "/rendered"), headers={"Accept": "image/gif"})
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).format == "GIF"


def test_viewport_scales_the_image(api, ct):
    response = api.get(url(ct, "/rendered"), params={"viewport": "16,16", "accept": "image/png"})
    assert Image.open(io.BytesIO(response.content)).size == (16, 16)
    cropped = api.get(url(ct, "/rendered"), params={"viewport": "4,4,0,0,4,4", "accept": "image/png"})
    window = np.array(
        Image.open(io.BytesIO(api.get(url(ct, "/rendered"), params={"accept": "image/png"}).content))
    )
    assert np.array_equal(image(cropped), window[:4, :4])


def test_annotation_burns_in_text(api, ct):
    plain = image(api.get(url(ct, "/rendered"), params={"accept": "image/png", "viewport": "256,256"}))
    annotated = image(
        api.get(
            url(ct, "/rendered"),
            params={"accept": "image/png", "viewport": "256,256", "annotation": "patient,technique"},
        )
    )
    changed = plain != annotated
    assert changed.any()
    assert changed[: plain.shape[0] // 2, : plain.shape[1] // 2].sum() == changed.sum()  # top left only


def test_frame_rendered_picks_the_frame(api):
    ds = make_dataset(rows=4, columns=4, frames=3, NumberOfFrames=3, RescaleIntercept=0)
    ds.PixelData = np.stack([np.full((4, 4), v, np.uint16) for v in (0, 500, 1000)]).tobytes()
    assert stow(api, [to_part10(ds)]).status_code == 200
    threshold = {"window": "750,1", "accept": "image/png"}
    assert image(api.get(url(ds, "/frames/2/rendered"), params=threshold)).max() == 0
    assert image(api.get(url(ds, "/frames/3/rendered"), params=threshold)).min() == 255
    assert api.get(url(ds, "/frames/4/rendered")).status_code == 404


def test_study_rendered_is_a_multipart_of_every_image(api):
    study = new_uid()
    a = ramp(study_uid=study, InstanceNumber=1)
    b = ramp(study_uid=study, InstanceNumber=2)
    assert stow(api, [to_part10(a), to_part10(b)]).status_code == 200
    response = api.get(
        f"/dicomweb/studies/{study}/rendered", params={"accept": 'multipart/related; type="image/png"'}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="image/png"')
    message = email.message_from_bytes(
        b"Content-Type: " + response.headers["content-type"].encode() + b"\r\n\r\n" + response.content
    )
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts] == ["image/png", "image/png"]
    locations = {p["Content-Location"].split("/instances/")[1] for p in parts}
    assert locations == {f"{a.SOPInstanceUID}/rendered", f"{b.SOPInstanceUID}/rendered"}


def test_series_rendered_as_one_image_is_the_representative(api):
    study, series = new_uid(), new_uid()
    slices = [ramp(study_uid=study, series_uid=series, InstanceNumber=n, pixel_seed=n) for n in (3, 1, 2)]
    assert stow(api, [to_part10(ds) for ds in slices]).status_code == 200
    single = api.get(f"/dicomweb/studies/{study}/series/{series}/rendered", params={"accept": "image/png"})
    middle = next(ds for ds in slices if ds.InstanceNumber == 2)
    assert np.array_equal(
        image(single), image(api.get(url(middle, "/rendered"), params={"accept": "image/png"}))
    )


@pytest.mark.parametrize(
    "params",
    [
        {"quality": "0"},
        {"quality": "abc"},
        {"viewport": "0,10"},
        {"viewport": "10"},
        {"viewport": "10,10,100,100,4,4"},
        {"window": "40"},
        {"window": "40,0,LINEAR"},
        {"window": "40,400,CUBIC"},
        {"annotation": "everything"},
        {"charset": "no-such-charset"},
    ],
)
def test_bad_parameters_are_400(api, ct, params):
    response = api.get(url(ct, "/rendered"), params=params)
    assert response.status_code == 400, response.text
    assert next(iter(params)) in response.json()["detail"]


def test_unsupported_media_type_is_406(api, ct):
    assert api.get(url(ct, "/rendered"), headers={"Accept": "image/tiff"}).status_code == 406
    assert api.get(url(ct, "/thumbnail"), headers={"Accept": "application/dicom"}).status_code == 406


def test_instance_without_pixel_data_is_404(api):
    ds = make_dataset()
    del ds.PixelData
    assert stow(api, [to_part10(ds)]).status_code == 200
    assert api.get(url(ds, "/rendered")).status_code == 404
    assert api.get(url(ds, "/thumbnail")).status_code == 404


def test_unknown_instance_is_404_and_bad_uid_400(api, ct):
    assert api.get(url(make_dataset(study_uid=ct.StudyInstanceUID), "/rendered")).status_code == 404
    assert api.get(f"/dicomweb/studies/{ct.StudyInstanceUID}/series/x!y/rendered").status_code == 400


def test_rendering_needs_authentication(anonymous, ct):
    assert anonymous.get(url(ct, "/rendered")).status_code == 401
    assert anonymous.get(url(ct, "/thumbnail")).status_code == 401


# --- thumbnails ---------------------------------------------------------------------------------


def test_thumbnail_is_made_on_store_and_served_from_storage(api, ct):
    source = thumbnails.instance_source(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    key = thumbnails.thumbnail_key(source, 1, 128, 128, "image/jpeg")
    assert storage.exists(key)  # made by rendering.make_thumbnails after the STOW committed
    response = api.get(url(ct, "/thumbnail"))
    assert response.status_code == 200
    assert response.headers["Archway-Thumbnail"] == "stored"
    assert response.content == b"".join(storage.open_stream(key))
    assert Image.open(io.BytesIO(response.content)).size == (128, 128)


def test_thumbnail_revalidation_answers_304_until_the_instance_changes(api, ct):
    first = api.get(url(ct, "/thumbnail"))
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = api.get(url(ct, "/thumbnail"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    # Another size or format is another image with another tag.
    other = api.get(url(ct, "/thumbnail"), params={"viewport": "64,64"}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # A replacement (PUT) is a new version: the old tag no longer matches.
    ct.WindowCenter, ct.WindowWidth = 40, 80
    replaced = api.put(
        f"/dicomweb/studies/{ct.StudyInstanceUID}",
        content=to_part10(ct),
        headers={"Content-Type": "application/dicom"},
    )
    assert replaced.status_code == 200
    fresh = api.get(url(ct, "/thumbnail"), headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert fresh.content != first.content  # rendered with the new window


def test_missing_thumbnail_is_rendered_and_stored_on_demand(api, ct):
    instance = Instance.objects.get(instance_uid=ct.SOPInstanceUID)
    for blob in list(storage.iter_blobs(derived_prefix(instance.blob_key))):
        storage.delete(blob.key)
    first = api.get(url(ct, "/thumbnail"), params={"viewport": "64,64", "accept": "image/png"})
    second = api.get(url(ct, "/thumbnail"), params={"viewport": "64,64", "accept": "image/png"})
    assert (first.headers["Archway-Thumbnail"], second.headers["Archway-Thumbnail"]) == ("rendered", "stored")
    assert first.content == second.content
    shown = image(first)
    assert shown.shape == (64, 64)
    # A 2x reduction of the windowed image (box filter): the mean brightness is preserved.
    full = image(api.get(url(ct, "/rendered"), params={"accept": "image/png"}))
    assert abs(float(shown.mean()) - float(full.mean())) < 1.0


def test_series_and_study_thumbnails_show_the_middle_slice(api):
    study = new_uid()
    series = new_uid()
    slices = [ramp(study_uid=study, series_uid=series, InstanceNumber=n, pixel_seed=n) for n in (1, 2, 3)]
    for stored, ds in zip((0, 1024, 3000), slices, strict=True):
        ds.PixelData = np.full((32, 32), stored, np.uint16).tobytes()
        ds.WindowCenter, ds.WindowWidth = 0, 2000
    other = ramp(study_uid=study, InstanceNumber=1)  # a one-image series does not represent the study
    assert stow(api, [to_part10(ds) for ds in (*slices, other)]).status_code == 200
    for path in (
        f"/dicomweb/studies/{study}/series/{series}/thumbnail",
        f"/dicomweb/studies/{study}/thumbnail",
    ):
        shown = image(api.get(path, params={"accept": "image/png"}))
        # The middle slice: stored 1024 is 0 HU, which the window c=0 w=2000 shows as
        # ((0 + 0.5) / 1999 + 0.5) * 255 = 127.6; the first slice would be 0, the last 255.
        assert (shown.min(), shown.max()) == (128, 128), path
    last = image(api.get(url(slices[2], "/thumbnail"), params={"accept": "image/png"}))
    assert last.min() == 255


def test_frame_thumbnail_and_viewport(api):
    ds = make_dataset(rows=8, columns=16, frames=2, NumberOfFrames=2, RescaleIntercept=0)
    ds.PixelData = np.stack([np.full((8, 16), v, np.uint16) for v in (0, 4000)]).tobytes()
    ds.WindowCenter, ds.WindowWidth = 2000, 100
    assert stow(api, [to_part10(ds)]).status_code == 200
    response = api.get(url(ds, "/frames/2/thumbnail"), params={"viewport": "100,100", "accept": "image/png"})
    assert response.status_code == 200
    assert image(response).shape == (50, 100)  # aspect kept inside 100x100
    assert image(response).min() == 255
    assert api.get(url(ds, "/frames/3/thumbnail")).status_code == 404


def test_deleting_the_study_removes_its_thumbnails(api, ct):
    instance = Instance.objects.get(instance_uid=ct.SOPInstanceUID)
    assert list(storage.iter_blobs(derived_prefix(instance.blob_key)))
    assert api.delete(f"/dicomweb/studies/{ct.StudyInstanceUID}").status_code == 204
    assert list(storage.iter_blobs(derived_prefix(instance.blob_key))) == []


def test_capabilities_list_rendered_and_thumbnail(api):
    document = api.request("OPTIONS", "/dicomweb", headers={"Accept": "application/json"}).json()
    by_path = {r["path"]: r for r in document["resources"]}
    rendered = by_path["/studies/{study}/series/{series}/instances/{instance}/rendered"]["methods"][0]
    assert rendered["operation"] == "Retrieve Rendered"
    assert [r["mediaType"] for r in rendered["representations"]] == ["image/jpeg", "image/png", "image/gif"]
    assert {"quality", "viewport", "window", "annotation"} <= set(rendered["queryParameters"])
    study = by_path["/studies/{study}/rendered"]["methods"][0]
    assert study["representations"][0]["mediaType"] == 'multipart/related; type="image/jpeg"'
    assert "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail" in by_path
