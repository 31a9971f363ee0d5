"""QIDO-RS: search for studies, series and instances (PS3.18 §10.6, conformance statement).

Responses are built from the index only (stored level attributes and maintained
counts), never from blobs. Returned per result: the level's default attributes (or all
of them with ``includefield=all``), requested ``includefield`` attributes, the query's own
match attributes, the UIDs of the path, the attributes of the levels above when searching
across levels, computed attributes and a RetrieveURL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from django.http import HttpResponse
from rest_framework.exceptions import ParseError

from archive import levels
from archive.models import Instance, Series, Study
from archive.query import Level, search
from dicomweb import multipart
from dicomweb.media import DICOM_JSON, DICOM_XML, JSON
from dicomweb.negotiation import AcceptDescriptor, Choice
from dicomweb.queryparams import QueryError, SearchRequest, parse_search
from dicomweb.views.base import DicomWebView, base_url, check_uid

SEARCH_DESCRIPTORS = (
    AcceptDescriptor(DICOM_JSON),
    AcceptDescriptor(JSON),
    AcceptDescriptor(DICOM_XML, multipart=True),
)

STUDY_COMPUTED = {
    0x00080061,
    0x00201206,
    0x00201208,
}  # ModalitiesInStudy, NumberOfStudyRelated{Series,Instances}
SERIES_COMPUTED = {0x00201209}  # NumberOfSeriesRelatedInstances
_BULK_URI = re.compile(r'("BulkDataURI":\s*")bulkdata/')


def _key(tag: int) -> str:
    return f"{tag:08X}"


def _pick(attributes: dict, tags: set[int] | None) -> dict:
    if tags is None:
        return dict(attributes)
    keys = {_key(tag) for tag in tags}
    return {key: value for key, value in attributes.items() if key in keys}


def _ui(value: str) -> dict:
    return {"vr": "UI", "Value": [value]}


def _is(value: int) -> dict:
    return {"vr": "IS", "Value": [value]}


class _Wanted:
    """Which tags a result of one level carries, for this request."""

    def __init__(
        self, request: SearchRequest, level_defaults: Iterable[int], level_all: Iterable[int]
    ) -> None:
        match_tags = {m.attribute.tag for m in request.spec.matches}
        base = set(level_all) if request.include_all else set(level_defaults)
        self.tags = base | request.includefield | match_tags


def study_result(study: Study, request: SearchRequest, root: str, *, tags: set[int] | None = None) -> dict:
    wanted = tags if tags is not None else _Wanted(request, levels.STUDY_DEFAULT_TAGS, levels.STUDY_TAGS).tags
    data = _pick(study.attributes, wanted)
    data["0020000D"] = _ui(study.study_uid)
    if 0x00080061 in wanted or tags is None:
        modalities = [m for m in study.modalities_in_study.split("\\") if m]
        data["00080061"] = {"vr": "CS", "Value": modalities} if modalities else {"vr": "CS"}
    if 0x00080062 in wanted or request.include_all:
        sop_classes = [s for s in study.sop_classes_in_study.split("\\") if s]
        data["00080062"] = {"vr": "UI", "Value": sop_classes} if sop_classes else {"vr": "UI"}
    if tags is None or 0x00201206 in wanted:
        data["00201206"] = _is(study.number_of_series)
    if tags is None or 0x00201208 in wanted:
        data["00201208"] = _is(study.number_of_instances)
    data["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{study.study_uid}"]}
    return data


def series_result(series: Series, request: SearchRequest, root: str, *, with_study: bool) -> dict:
    wanted = _Wanted(request, levels.SERIES_DEFAULT_TAGS, levels.SERIES_TAGS).tags
    data = {}
    if with_study:
        study_tags = _Wanted(request, levels.STUDY_DEFAULT_TAGS, levels.STUDY_TAGS).tags
        data.update(_pick(series.study.attributes, study_tags))
    data.update(_pick(series.attributes, wanted))
    data["0020000D"] = _ui(series.study.study_uid)
    data["0020000E"] = _ui(series.series_uid)
    data["00201209"] = _is(series.number_of_instances)
    data["00081190"] = {
        "vr": "UR",
        "Value": [f"{root}/studies/{series.study.study_uid}/series/{series.series_uid}"],
    }
    return data


def instance_result(
    instance: Instance, request: SearchRequest, root: str, *, with_study: bool, with_series: bool
) -> dict:
    wanted = _Wanted(request, levels.INSTANCE_DEFAULT_TAGS, levels.INSTANCE_TAGS).tags
    data = {}
    if with_study:
        data.update(
            _pick(
                instance.study.attributes, _Wanted(request, levels.STUDY_DEFAULT_TAGS, levels.STUDY_TAGS).tags
            )
        )
    if with_series:
        data.update(
            _pick(
                instance.series.attributes,
                _Wanted(request, levels.SERIES_DEFAULT_TAGS, levels.SERIES_TAGS).tags,
            )
        )
    series_url = f"{root}/studies/{instance.study.study_uid}/series/{instance.series.series_uid}"
    url = f"{series_url}/instances/{instance.instance_uid}"
    picked = _pick(instance.metadata, wanted)
    if picked:
        # includefield may name bulk elements: make their URIs absolute like metadata does.
        text = _BULK_URI.sub(lambda m: f"{m.group(1)}{url}/bulkdata/", json.dumps(picked))
        data.update(json.loads(text))
    data["0020000D"] = _ui(instance.study.study_uid)
    data["0020000E"] = _ui(instance.series.series_uid)
    data["00080018"] = _ui(instance.instance_uid)
    data["00081190"] = {"vr": "UR", "Value": [url]}
    return data


class SearchView(DicomWebView):
    """GET /studies, /series, /instances and their study/series-scoped forms."""

    audit_action = "search"

    accept_descriptors = SEARCH_DESCRIPTORS
    target: Level = "study"

    def get(self, request, study_uid: str | None = None, series_uid: str | None = None):
        if study_uid is not None:
            check_uid(study_uid, "StudyInstanceUID")
        if series_uid is not None:
            check_uid(series_uid, "SeriesInstanceUID")
        try:
            search_request = parse_search(
                request.query_params, self.target, study_uid=study_uid, series_uid=series_uid
            )
        except QueryError as exc:
            raise ParseError(str(exc)) from exc
        spec = search_request.spec
        _warn_unavailable_includefields(search_request, self.target)
        queryset = search(spec)
        if self.target == "series":
            queryset = queryset.select_related("study")
        elif self.target == "instance":
            queryset = queryset.select_related("study", "series")
        rows = list(queryset[spec.offset : spec.offset + spec.limit])
        if not rows:
            return HttpResponse(status=204)
        root = base_url(request)
        results = [self._result(row, search_request, root, study_uid, series_uid) for row in rows]
        return _render(results, request.dicom_choice, search_request.warnings)

    def _result(self, row, search_request, root, study_uid, series_uid) -> dict:
        if self.target == "study":
            return study_result(row, search_request, root)
        if self.target == "series":
            return series_result(row, search_request, root, with_study=study_uid is None)
        return instance_result(
            row, search_request, root, with_study=study_uid is None, with_series=series_uid is None
        )


def _warn_unavailable_includefields(search_request: SearchRequest, target: Level) -> None:
    """includefield of an attribute the level does not keep: say so (PS3.18 Warning 299).

    Instance results come from each instance's full metadata, so every attribute is
    available there; study and series results carry only their level's attributes (and,
    across levels, those of the levels above).
    """
    if target == "instance":
        return
    available = set(levels.STUDY_TAGS) | STUDY_COMPUTED | {0x00080062, 0x0020000D, 0x00081190}
    if target == "series":
        available |= set(levels.SERIES_TAGS) | SERIES_COMPUTED | {0x0020000E}
    missing = sorted(search_request.includefield - available)
    if missing:
        names = ", ".join(f"{tag:08X}" for tag in missing)
        search_request.warnings.append(
            f"includefield {names} not available at the {target} level; search instances to get it"
        )


def _render(results: list[dict], choice: Choice, warnings: list[str]) -> HttpResponse:
    sorted_results = [dict(sorted(result.items())) for result in results]
    if choice.media_type == DICOM_XML:
        from dicomweb.dicomxml import json_to_xml

        boundary = multipart.new_boundary()
        body = b"".join(
            multipart.encode_parts(
                (({"Content-Type": DICOM_XML}, [json_to_xml(r)]) for r in sorted_results), boundary
            )
        )
        response = HttpResponse(
            body, content_type=f'multipart/related; type="{DICOM_XML}"; boundary={boundary}'
        )
    else:
        body = json.dumps(sorted_results, ensure_ascii=False, separators=(",", ":")).encode()
        response = HttpResponse(body, content_type=choice.media_type)
    if warnings:
        response["Warning"] = ", ".join(f'299 archway "{text}"' for text in warnings)
    return response


class StudySearchView(SearchView):
    target = "study"


class SeriesSearchView(SearchView):
    target = "series"


class InstanceSearchView(SearchView):
    target = "instance"
