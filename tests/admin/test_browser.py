"""The admin in a real browser: Playwright driving Debian's Chromium against the live server.

Screenshots of the main pages go to ``test-artifacts/screenshots/`` (CI keeps them as
artifacts; the README's pictures come from there). Skipped, saying why, only where
Chromium or the Playwright package cannot exist.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pydicom
import pytest

from tests.admin.support import stow
from tests.conftest import make_user
from tests.factories import make_instance, new_uid

CHROMIUM = os.environ.get("ARCHWAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extras)")
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse ORM calls from the test body (they are synchronous and safe here).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium, live_url):
    """A logged-in staff user's browser tab, failing the test on any 5xx response."""
    user, _ = make_user("radiographer", ("read", "write", "delete"))
    user.is_staff = True
    user.save()
    context = chromium.new_context(base_url=live_url, viewport={"width": 1366, "height": 800})
    tab = context.new_page()
    server_errors: list[str] = []
    tab.on("response", lambda r: server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    tab.goto("/admin/login/")
    tab.fill("#id_username", "radiographer")
    tab.fill("#id_password", "pw-radiographer")
    tab.click("input[type=submit]")
    tab.wait_for_url("**/admin/")
    yield tab
    context.close()
    assert not server_errors, server_errors


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def _loaded(page, selector: str) -> dict:
    """Wait until the image has loaded; its natural size (0 x 0 when it failed)."""
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete; }", arg=selector
    )
    return page.eval_on_selector(selector, "i => ({w: i.naturalWidth, h: i.naturalHeight})")


def _study(api, **kwargs) -> tuple[str, str]:
    study_uid, series_uid = new_uid(), new_uid()
    stow(
        api,
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            frames=4,
            rows=64,
            columns=64,
            InstanceNumber=1,
            **kwargs,
        ),
        make_instance(
            study_uid=study_uid, series_uid=series_uid, rows=64, columns=64, InstanceNumber=2, **kwargs
        ),
    )
    return study_uid, series_uid


def test_search_open_study_see_thumbnail_and_page_through_frames(page, api):
    _study(api, patient_name="Nowak^Zoë", patient_id="P-NOWAK", StudyDescription="CT abdomen")
    _study(api, patient_name="Other^Person", patient_id="P-OTHER", modality="MR")
    page.reload()
    _shot(page, "dashboard")
    page.click("text=Studies")
    page.fill("#searchbar", "zoe NOWAK")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "Nowak" in rows.first.inner_text()
    thumb = _loaded(page, "#result_list img.aw-thumb")
    assert thumb["w"] > 0 and thumb["h"] > 0
    _shot(page, "study-list")
    page.click("#result_list tbody tr a:has-text('CT abdomen')")
    page.wait_for_selector("#series-table")
    assert _loaded(page, "#series-table img.aw-thumb")["w"] > 0
    _shot(page, "study")
    page.click("#series-table a:has-text('View images')")
    page.wait_for_selector("#image")
    first = _loaded(page, "#image")
    assert first == {"w": 64, "h": 64}
    assert page.inner_text("#frame-number") == "1"
    first_src = page.get_attribute("#image", "src")
    page.click("#next-frame")
    page.wait_for_selector("#frame-number:has-text('2')")
    assert _loaded(page, "#image")["w"] == 64
    assert page.get_attribute("#image", "src") != first_src and "/frames/2/rendered" in page.get_attribute(
        "#image", "src"
    )
    page.keyboard.press("ArrowDown")  # keyboard navigation: next frame
    page.wait_for_selector("#frame-number:has-text('3')")
    page.click("[data-preset=lung]")
    page.wait_for_selector("[data-preset=lung].aw-active")
    assert "window=-600%2C1500%2CLINEAR" in page.get_attribute("#image", "src")
    assert _loaded(page, "#image")["w"] == 64
    assert page.locator("#metadata td:has-text('PatientName')").count() == 1
    _shot(page, "viewer")
    page.click("#next-instance")
    page.wait_for_selector("text=Image 2 / 2")
    assert _loaded(page, "#image")["w"] == 64


def test_upload_a_file(page, api):
    study_uid = new_uid()
    data = make_instance(study_uid=study_uid, patient_name="Upload^Browser")
    page.goto("/admin/archive/study/upload/")
    page.set_input_files(
        "#id_files",
        files=[
            {"name": "IMG0001.dcm", "mimeType": "application/dicom", "buffer": data},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"},
        ],
    )
    page.click("#upload-submit")
    page.wait_for_selector("#upload-results")
    assert page.inner_text("#upload-summary") == "1 stored, 0 already present, 1 failed"
    _shot(page, "upload")
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 200
    page.click("a.aw-study-link")
    page.wait_for_selector("#series-table")


def test_edit_patient_name_and_see_it_in_dicomweb(page, api):
    study_uid, series_uid = _study(api, patient_name="Smiht^Anna", patient_id="P-ANNA")
    page.goto("/admin/archive/patient/")
    page.click("text=Smiht^Anna")
    page.fill("#id_patient_name", "Smith^Anna")
    _shot(page, "patient-edit")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert "Corrected 2 instance(s)" in page.inner_text(".messagelist")
    metadata = api.get(f"/dicomweb/studies/{study_uid}/metadata").json()
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {"Smith^Anna"}
    original = api.get(
        f"/dicomweb/studies/{study_uid}/series/{series_uid}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            "msdicom-request-original": "true",
        },
    )
    assert (
        original.status_code == 200
        and b"Smiht^Anna" in original.content
        and b"Smith^Anna" not in original.content
    )


def test_delete_a_study_after_confirmation(page, api):
    study_uid, _ = _study(api, patient_name="Mistake^Study", StudyDescription="Wrong patient")
    page.goto("/admin/archive/study/")
    page.click("#result_list a:has-text('Wrong patient')")
    page.click("a.deletelink")
    page.wait_for_selector("text=Are you sure")
    assert "2 instance(s)" in page.inner_text("#content")
    _shot(page, "delete-confirmation")
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 200
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert api.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 404
    page.goto("/admin/archive/auditevent/")
    assert page.locator("#result_list td:has-text('delete')").count() >= 1
    _shot(page, "audit-trail")


def test_download_instance_from_the_viewer(page, api):
    study_uid, _ = _study(api)
    from archive.models import Series

    page.goto(f"/admin/archive/series/{Series.objects.get().pk}/viewer/")
    with page.expect_download() as download:
        page.click("#download-instance")
    ds = pydicom.dcmread(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert ds.StudyInstanceUID == study_uid


def test_open_study_in_ohif_draws_an_image_and_every_request_succeeds(page, api, live_url):
    from archive.ohif import installed

    if not installed():
        pytest.skip("the OHIF Viewer is not installed: `make ohif` (needs npm; .ci/run does it)")
    study_uid, _ = _study(api, patient_name="Viewer^Ohif")
    from archive.models import Study

    failures: list[str] = []
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.url}") if r.status >= 400 and r.url.startswith(live_url) else None
        ),
    )
    page.goto(f"/admin/archive/study/{Study.objects.get().pk}/change/")
    with page.context.expect_page() as opened:
        page.click("#open-in-viewer")
    viewer = opened.value
    viewer.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.url}") if r.status >= 400 and r.url.startswith(live_url) else None
        ),
    )
    console: list[str] = []
    viewer.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        viewer.wait_for_selector("canvas", timeout=60_000)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(path=str(SCREENSHOTS / "ohif-failed.png"))
        raise AssertionError(
            f"no canvas at {viewer.url}; failures {failures}; console {console[-15:]}"
        ) from None
    from PIL import Image, ImageStat

    drawn = None
    for _ in range(60):  # the first frame arrives asynchronously
        viewer.wait_for_timeout(500)
        canvases = viewer.locator("canvas")
        for index in range(canvases.count()):
            canvas = canvases.nth(index)
            box = canvas.bounding_box()
            if not box or box["width"] < 100 or box["height"] < 100:
                continue
            shot = Image.open(io.BytesIO(canvas.screenshot())).convert("L")
            if ImageStat.Stat(shot).stddev[0] > 5:  # not a blank (uniform) canvas
                drawn = shot
                break
        if drawn is not None:
            break
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(SCREENSHOTS / "ohif.png"))
    assert drawn is not None, "OHIF drew no image"
    assert study_uid in viewer.url
    assert not failures, failures


def test_worklist_claim_a_workitem(page):
    from django.contrib.auth.models import Group, User

    from tests.workitems.helpers import workitem
    from workitems import services
    from workitems.models import Workitem

    User.objects.get(username="radiographer").groups.add(Group.objects.get(name="worklist"))
    uid = new_uid()
    services.create(workitem(uid, patient_name="Worklist^Browser", patient_id="P-WL", label="CT head"))
    services.create(
        workitem(new_uid(), patient_name="Other^Patient", label="MR knee", start="20240301100000")
    )
    page.goto("/admin/")
    page.click(".aw-nav a:has-text('Worklist')")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    page.click("#result_list a:has-text('CT head')")
    page.wait_for_selector("#workitem-actions")
    assert page.inner_text("#workitem-state") == "SCHEDULED"
    assert page.locator("#dataset-table td:has-text('PatientName')").count() == 1
    page.click("#action-claim")
    page.wait_for_selector(".messagelist")
    assert "now IN PROGRESS" in page.inner_text(".messagelist")
    assert page.inner_text("#workitem-state") == "IN PROGRESS"
    assert page.locator("#action-complete").count() == 1 and page.locator("#action-claim").count() == 0
    _shot(page, "worklist")
    assert Workitem.objects.get(workitem_uid=uid).state == "IN PROGRESS"
