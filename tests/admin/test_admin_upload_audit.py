"""Upload (files and zips), downloads (instance, study zip), viewer, audit trail, dashboard."""

from __future__ import annotations

import io
import re
import time
import zipfile

import pydicom
import pytest

from tests.admin.support import csrf, login, stow
from tests.factories import make_instance, new_uid

UPLOAD = "/admin/archive/study/upload/"


def _upload(browser, files):
    token = csrf(browser, UPLOAD)
    return browser.post(UPLOAD, data={"csrfmiddlewaretoken": token}, files=files)


@pytest.mark.both_tiers
def test_upload_files_and_zip_with_per_file_results(live_url, api):
    study_uid = new_uid()
    first = make_instance(study_uid=study_uid, patient_name="Upload^One")
    second = make_instance(study_uid=study_uid, patient_name="Upload^One", InstanceNumber=2)
    third = make_instance(study_uid=study_uid, patient_name="Upload^One", InstanceNumber=3)
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("cd/IMG0002", second)
        archive.writestr("cd/IMG0003", third)
        archive.writestr("cd/README.TXT", b"not dicom")
        archive.writestr("cd/IMG0001", first)  # the same instance as the single file
    browser = login(live_url, "tech")
    response = _upload(
        browser,
        [
            ("files", ("one.dcm", first, "application/dicom")),
            ("files", ("cd.zip", packed.getvalue(), "application/zip")),
            ("files", ("broken.dcm", b"DICM but not really", "application/dicom")),
        ],
    )
    assert response.status_code == 200
    rows = re.findall(
        r"<tr class=\"aw-([a-z-]+)\"><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td>", response.text
    )
    results = {name: (status, reason) for _, name, status, reason in rows}
    assert results["one.dcm"][0] == "stored"
    assert results["cd.zip / cd/IMG0002"][0] == "stored"
    assert results["cd.zip / cd/IMG0003"][0] == "stored"
    assert results["cd.zip / cd/IMG0001"][0] == "already present"
    assert results["cd.zip / cd/README.TXT"][0] == "failed"
    assert results["broken.dcm"][0] == "failed" and "272" in results["broken.dcm"][1]
    assert "3 stored, 1 already present, 2 failed" in response.text
    # Stored through the STOW path: DICOMweb sees all three instances.
    metadata = api.get(f"/dicomweb/studies/{study_uid}/metadata")
    assert metadata.status_code == 200 and len(metadata.json()) == 3
    from archive.models import AuditEvent

    event = AuditEvent.objects.get(action="upload")
    assert event.username == "tech" and event.detail == "3 stored, 1 already present, 2 failed"


def test_upload_needs_a_file(live_url):
    browser = login(live_url, "tech")
    response = _upload(browser, [])
    assert response.status_code == 200 and "This field is required" in response.text


@pytest.mark.both_tiers
def test_download_instance_and_study_zip(live_url, api):
    study_uid = new_uid()
    parts = [make_instance(study_uid=study_uid, InstanceNumber=n, pixel_seed=n) for n in (1, 2, 3)]
    stow(api, *parts)
    from archive.models import Instance, Study

    study = Study.objects.get(study_uid=study_uid)
    browser = login(live_url, "tech")
    response = browser.get(f"/admin/archive/study/{study.pk}/download/")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert len(names) == 3
        pixels = sorted(pydicom.dcmread(io.BytesIO(archive.read(n))).PixelData for n in names)
    assert pixels == sorted(pydicom.dcmread(io.BytesIO(p)).PixelData for p in parts)
    instance = Instance.objects.get(instance_number=2)
    single = browser.get(f"/admin/archive/instance/{instance.pk}/download/")
    assert single.status_code == 200
    assert single.headers["content-disposition"].endswith('.dcm"')
    assert single.content[128:132] == b"DICM"
    assert pydicom.dcmread(io.BytesIO(single.content)).SOPInstanceUID == instance.instance_uid
    nobody = login(live_url, "nobody", roles=())
    assert nobody.get(f"/admin/archive/study/{study.pk}/download/").status_code == 403


def test_viewer_pages_frames_windows_and_metadata(live_url, api):
    study_uid, series_uid = new_uid(), new_uid()
    stow(
        api,
        make_instance(
            study_uid=study_uid, series_uid=series_uid, frames=3, rows=32, columns=32, InstanceNumber=1
        ),
        make_instance(study_uid=study_uid, series_uid=series_uid, rows=32, columns=32, InstanceNumber=2),
    )
    from archive.models import Series

    series = Series.objects.get(series_uid=series_uid)
    browser = login(live_url, "tech")
    base = f"/admin/archive/series/{series.pk}/viewer/"
    page = browser.get(base).text
    assert "Image 1 / 2" in page and 'id="frame-number">1<' in page
    assert "(0010,0010)" in page and "PatientName" in page and "Doe^John" in page
    src = re.search(r'<img id="image" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "/frames/1/rendered" in src
    frame1 = browser.get(src)
    assert frame1.status_code == 200 and frame1.content[:2] == b"\xff\xd8"
    next_frame = re.search(r'id="next-frame" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    page2 = browser.get(next_frame).text
    assert 'id="frame-number">2<' in page2
    src2 = re.search(r'<img id="image" src="([^"]+)"', page2).group(1).replace("&amp;", "&")
    assert "/frames/2/rendered" in src2 and browser.get(src2).content != frame1.content
    lung = browser.get(base, params={"preset": "lung"}).text
    lung_src = re.search(r'<img id="image" src="([^"]+)"', lung).group(1).replace("&amp;", "&")
    assert "window=-600%2C1500%2CLINEAR" in lung_src
    assert browser.get(lung_src).status_code == 200
    second = browser.get(base, params={"i": "2"}).text
    assert "Image 2 / 2" in second and "frame-nav" not in second
    assert browser.get(base, params={"i": "junk", "frame": "-4"}).status_code == 200


def test_dicomweb_requests_are_audited_with_who_and_where(live_url, api, anonymous):
    study_uid = new_uid()
    stow(api, make_instance(study_uid=study_uid))
    api.get("/dicomweb/studies", params={"PatientID": "PAT-1"})
    api.get(f"/dicomweb/studies/{study_uid}/metadata")
    anonymous.get(f"/dicomweb/studies/{study_uid}/metadata")
    api.delete(f"/dicomweb/studies/{study_uid}")
    from archive.models import AuditEvent

    events = list(AuditEvent.objects.order_by("id").values_list("action", "username", "status", "study_uid"))
    assert events == [
        ("store", "integrator", 200, ""),
        ("search", "integrator", 200, ""),
        ("retrieve", "integrator", 200, study_uid),
        ("retrieve", "", 401, study_uid),
        ("delete", "integrator", 204, study_uid),
    ]
    assert set(AuditEvent.objects.values_list("remote_addr", flat=True)) == {"127.0.0.1"}


def test_audit_trail_is_read_only_in_the_admin(live_url, api):
    stow(api, make_instance())
    from archive.models import AuditEvent

    event = AuditEvent.objects.get()
    browser = login(live_url, "pacsadmin")
    listing = browser.get("/admin/archive/auditevent/")
    assert listing.status_code == 200 and "integrator" in listing.text
    detail = browser.get(f"/admin/archive/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and 'type="submit"' not in detail.text.split('id="auditevent_form"')[-1]
    url = f"/admin/archive/auditevent/{event.pk}/delete/"
    assert browser.get(url).status_code == 403
    token = csrf(browser, "/admin/archive/auditevent/")
    response = browser.post(
        f"/admin/archive/auditevent/{event.pk}/change/",
        data={"csrfmiddlewaretoken": token, "action": "delete"},
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk, action="store").exists()


def test_dashboard_counts_modalities_chart_activity_and_workers(live_url, api):
    stow(api, make_instance(modality="MR"), make_instance(modality="CT"), make_instance(modality="CT"))
    browser = login(live_url, "pacsadmin")
    page = browser.get("/admin/").text
    assert re.search(r'id="total-studies">3<', page)
    assert re.search(r'id="total-instances">3<', page)
    table = page.split('id="by-modality"')[1].split("</table>")[0]
    assert re.search(r"CT</a></td>\s*<td>2</td>", table) and re.search(r"MR</a></td>\s*<td>1</td>", table)
    chart = page.split('id="chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == 12 and "3 studies" in chart
    assert "Tasks run in-process" in page
    activity = page.split('id="recent-activity"')[1].split("</table>")[0]
    assert "integrator" in activity and "store" in activity


def test_viewer_link_says_how_to_install_ohif_when_missing(live_url, api, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # no bundle installed here
    stow(api, make_instance())
    from archive.models import Study

    browser = login(live_url, "tech")
    page = browser.get(f"/admin/archive/study/{Study.objects.get().pk}/change/").text
    assert "Open in viewer (not installed)" in page and "make ohif" in page
    response = browser.get("/viewer/viewer?StudyInstanceUIDs=1.2.3")
    assert response.status_code == 404 and "make ohif" in response.text
    assert httpx_anonymous(live_url).get("/viewer/").status_code == 302  # staff login first


def test_viewer_serves_bundle_with_spa_fallback(live_url, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    bundle = tmp_path / "ohif"
    bundle.mkdir()
    (bundle / "index.html").write_text(
        "<script>window.PUBLIC_URL = '/';</script><script src=\"/app-config.js\"></script>"
        '<script src="/app.bundle.js"></script>'
    )
    (bundle / "app.bundle.js").write_text("console.log('ohif')")
    browser = login(live_url, "tech")
    for route in ("/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/callback"):
        page = browser.get(route)
        assert page.status_code == 200, route
        assert "window.PUBLIC_URL = '/viewer/'" in page.text and 'src="/viewer/app.bundle.js"' in page.text
    script = browser.get("/viewer/app.bundle.js")
    assert script.status_code == 200 and script.text == "console.log('ohif')"
    assert "javascript" in script.headers["content-type"]
    config = browser.get("/viewer/app-config.js").text
    assert f"qidoRoot: '{live_url}/dicomweb'" in config
    assert browser.get("/viewer/missing.bundle.js").status_code == 404
    assert browser.get("/viewer/../../etc/passwd").status_code in (404, 400)


def httpx_anonymous(live_url):
    import httpx

    return httpx.Client(base_url=live_url, timeout=30)


@pytest.mark.real_services
def test_dashboard_shows_queue_lengths_and_workers_with_a_broker(live_url, settings):
    import redis

    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unavailable at {url}: {exc}")
    settings.CELERY_BROKER_URL = url
    browser = login(live_url, "pacsadmin")
    workers = browser.get("/admin/").text.split('id="workers"')[1].split("</section>")[0]
    assert "Broker unreachable" not in workers, workers
    assert re.search(r"<td>celery</td><td>\d+</td>", workers)
    assert "last heartbeat" in workers


def test_dicomweb_events_are_written_in_batches_and_none_is_lost(live_url, api, settings):
    """The production mode: events queue in the process and reach the table within the interval."""
    from archive import audit
    from archive.models import AuditEvent

    settings.ARCHWAY_AUDIT_FLUSH_SECONDS = 0.3
    study_uid = new_uid()
    stow(api, make_instance(study_uid=study_uid))
    for _ in range(25):
        assert api.get("/dicomweb/studies", params={"StudyInstanceUID": study_uid}).status_code == 200
    # Written without anybody asking, within the interval (polled: no sleep-and-hope).
    deadline = time.monotonic() + 10
    while AuditEvent.objects.count() < 26 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert AuditEvent.objects.count() == 26
    assert audit.flush()
    events = list(AuditEvent.objects.order_by("id").values_list("action", "username", "status", "path"))
    assert events[0][:3] == ("store", "integrator", 200)
    search = ("search", "integrator", 200, f"/dicomweb/studies?StudyInstanceUID={study_uid}")
    assert events[1:] == [search] * 25
