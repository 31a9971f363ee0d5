"""Retrieve Capabilities (PS3.18 §8.9), generated from the routes and negotiation tables."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

WADL_NS = "{http://wadl.dev.java.net/2009/02}"


def test_service_capabilities_as_wadl(anonymous):
    response = anonymous.request("OPTIONS", "/dicomweb")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.sun.wadl+xml"
    root = ElementTree.fromstring(response.content)
    paths = {r.get("path") for r in root.iter(f"{WADL_NS}resource")}
    assert {
        "studies",
        "studies/{study}",
        "studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
        "studies/{study}/metadata",
        "series",
        "instances",
        "wado",
    } <= paths
    methods = {
        (r.get("path"), m.get("name"))
        for r in root.iter(f"{WADL_NS}resource")
        for m in r.iter(f"{WADL_NS}method")
    }
    assert ("studies", "POST") in methods and ("studies", "GET") in methods
    assert ("studies/{study}", "DELETE") in methods


def test_capabilities_as_json_list_transfer_syntaxes_and_query_parameters(anonymous):
    response = anonymous.request("OPTIONS", "/dicomweb/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    document = response.json()
    by_path = {r["path"]: r for r in document["resources"]}
    (get_instance,) = [
        m
        for m in by_path["/studies/{study}/series/{series}/instances/{instance}"]["methods"]
        if m["name"] == "GET"
    ]
    media = {r["mediaType"] for r in get_instance["representations"]}
    assert media == {'multipart/related; type="application/dicom"', "application/dicom"}
    syntaxes = get_instance["representations"][0]["transferSyntaxes"]
    assert "1.2.840.10008.1.2.4.90" in syntaxes and "*" in syntaxes
    (search,) = [m for m in by_path["/studies"]["methods"] if m["name"] == "GET"]
    assert {"PatientName", "StudyDate", "limit", "offset", "includefield", "fuzzymatching"} <= set(
        search["queryParameters"]
    )
    assert "Modality" not in search["queryParameters"]  # a series attribute is not searchable on /studies


def test_options_on_a_resource_describes_it_with_allow(anonymous):
    response = anonymous.request(
        "OPTIONS", "/dicomweb/studies/1.2.3/metadata", headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert "GET" in response.headers["allow"]
    (resource,) = response.json()["resources"]
    assert resource["path"] == "/studies/{study}/metadata"


def test_unacceptable_capabilities_format_is_406(anonymous):
    assert anonymous.request("OPTIONS", "/dicomweb", headers={"Accept": "text/html"}).status_code == 406


pytestmark = pytest.mark.filterwarnings("ignore")
