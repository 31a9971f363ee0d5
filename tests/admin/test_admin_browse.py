"""Browse and search in the admin: lists, search box, filters, links, query counts."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from archive import ingest
from tests.admin.support import login, stow
from tests.conftest import make_user
from tests.factories import make_instance, new_uid

pytestmark = pytest.mark.django_db(transaction=True)


def _store_study(n_series: int = 2, per_series: int = 2, **attributes) -> str:
    study_uid = new_uid()
    for s in range(n_series):
        series_uid = new_uid()
        for i in range(per_series):
            data = make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                InstanceNumber=i + 1,
                SeriesNumber=s + 1,
                **attributes,
            )
            outcome = ingest.store(io.BytesIO(data))
            assert outcome.stored, outcome
    return study_uid


@pytest.fixture
def staff_client(client, dicom_storage):
    user, _ = make_user("tech", ("read", "write", "delete"))
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/archive/study/",
        "/admin/archive/series/",
        "/admin/archive/instance/",
        "/admin/archive/patient/",
        "/admin/archive/study/?q=doe",
        "/admin/archive/study/?modality=CT",
        "/admin/",
    ],
)
def test_list_pages_cost_the_same_queries_for_3_or_15_studies(staff_client, django_assert_num_queries, url):
    """No per-row queries: the query count does not grow with the number of rows shown."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        _store_study(patient_id=new_uid()[-10:])
    with CaptureQueriesContext(connection) as small:
        assert staff_client.get(url).status_code == 200
    for _ in range(12):
        _store_study(patient_id=new_uid()[-10:])
    with CaptureQueriesContext(connection) as large:
        response = staff_client.get(url)
    assert response.status_code == 200
    # Audit rows are written per request, not per row; everything else is page-sized queries.
    assert len(large.captured_queries) == len(small.captured_queries), [
        q["sql"] for q in large.captured_queries
    ]
    assert len(large.captured_queries) <= 20


def test_search_patient_name_ignores_case_accents_and_word_order(live_url, api):
    stow(api, make_instance(patient_name="Müller^Hans", patient_id="P-MUELLER", StudyDescription="CT chest"))
    stow(api, make_instance(patient_name="Doe^John", patient_id="P-DOE", AccessionNumber="ACC-77"))
    browser = login(live_url, "tech")
    for term in ("muller", "HANS MÜLLER", "mül ha"):
        page = browser.get("/admin/archive/study/", params={"q": term})
        assert page.status_code == 200
        assert "Müller Hans" in page.text, term
        assert "Doe John" not in page.text, term
    by_id = browser.get("/admin/archive/study/", params={"q": "p-doe"}).text
    assert "Doe John" in by_id and "Müller" not in by_id
    by_accession = browser.get("/admin/archive/study/", params={"q": "ACC-77"}).text
    assert "Doe John" in by_accession and "Müller" not in by_accession
    by_description = browser.get("/admin/archive/study/", params={"q": "ct ch"}).text
    assert "Müller Hans" in by_description and "Doe John" not in by_description
    patients = browser.get("/admin/archive/patient/", params={"q": "hans"}).text
    assert "P-MUELLER" in patients and "P-DOE" not in patients


def test_modality_and_date_filters(live_url, api):
    stow(api, make_instance(patient_name="Mr^Scan", modality="MR", StudyDate="20200105"))
    stow(api, make_instance(patient_name="Ct^Scan", modality="CT", StudyDate="20230301"))
    browser = login(live_url, "tech")
    page = browser.get("/admin/archive/study/", params={"modality": "MR"}).text
    assert "Mr Scan" in page and "Ct Scan" not in page
    page = browser.get("/admin/archive/study/", params={"study_date__year": "2023"}).text
    assert "Ct Scan" in page and "Mr Scan" not in page


def test_links_go_down_and_up_the_hierarchy(live_url, api):
    data = make_instance(patient_name="Link^Test", patient_id="P-LINK")
    stow(api, data)
    browser = login(live_url, "tech")
    from archive.models import Instance, Patient, Series, Study

    patient, study = Patient.objects.get(patient_id="P-LINK"), Study.objects.get()
    series, instance = Series.objects.get(), Instance.objects.get()
    patients = browser.get("/admin/archive/patient/").text
    assert f"/admin/archive/study/?patient__id__exact={patient.pk}" in patients
    studies = browser.get(f"/admin/archive/study/?patient__id__exact={patient.pk}")
    assert studies.status_code == 200 and "Link Test" in studies.text
    assert f"/admin/archive/series/?study__id__exact={study.pk}" in studies.text
    assert f"/admin/archive/patient/{patient.pk}/change/" in studies.text  # back up
    series_list = browser.get(f"/admin/archive/series/?study__id__exact={study.pk}").text
    assert f"/admin/archive/study/{study.pk}/change/" in series_list
    assert f"/admin/archive/series/{series.pk}/viewer/" in series_list
    detail = browser.get(f"/admin/archive/study/{study.pk}/change/").text
    assert f"/admin/archive/instance/?series__id__exact={series.pk}" in detail
    instances = browser.get(f"/admin/archive/instance/?series__id__exact={series.pk}").text
    assert instance.instance_uid in instances
    assert f"/admin/archive/series/{series.pk}/change/" in instances


def test_list_thumbnails_are_real_jpegs(live_url, api):
    stow(api, make_instance(rows=32, columns=32))
    browser = login(live_url, "tech")
    page = browser.get("/admin/archive/study/").text
    import html
    import re

    src = html.unescape(re.search(r'<img class="aw-thumb"[^>]*src="([^"]+)"', page).group(1))
    image = browser.get(src)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size[0] > 0


def test_staff_without_read_role_sees_no_archive(live_url):
    browser = login(live_url, "nobody", roles=())
    assert browser.get("/admin/archive/study/").status_code == 403
    browser_write_only = login(live_url, "writer", roles=("read",))
    assert browser_write_only.get("/admin/archive/study/").status_code == 200
    assert browser_write_only.get("/admin/archive/study/upload/").status_code == 403
