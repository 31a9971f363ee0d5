"""UPS-RS over HTTP (PS3.18 chapter 11; conformance statement "Worklist Service").

Thin DRF views over ``workitems.services``: they parse the body (DICOM JSON, or PS3.19
XML where the client sends it), map ``UpsError``'s DICOM status to the HTTP status of
that transaction (``states.HTTP_STATUS``) and render with ``dicomweb``'s negotiation,
renderers and authentication. Every UPS resource needs the ``worklist`` role.
"""

from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from rest_framework.exceptions import ParseError, UnsupportedMediaType

from dicomweb.media import DICOM_JSON, DICOM_XML, JSON, MediaType, MediaTypeError
from dicomweb.negotiation import AcceptDescriptor
from dicomweb.renderers import DicomJsonRenderer, DicomXmlRenderer, PlainJsonRenderer
from dicomweb.views.base import DicomWebView, base_url
from dicomweb.views.search import SEARCH_DESCRIPTORS, _render
from workitems import query as wq
from workitems import services
from workitems.services import UpsError
from workitems.states import MESSAGES, http_status

WORKITEM_DESCRIPTORS = (AcceptDescriptor(DICOM_JSON), AcceptDescriptor(JSON), AcceptDescriptor(DICOM_XML))
BODY_TYPES = (DICOM_JSON, JSON, DICOM_XML)
WORKLIST = {method: "worklist" for method in ("GET", "HEAD", "POST", "PUT", "DELETE")}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def warning_header(text: str) -> str:
    return f'299 archway "{text}"'


def read_dataset(request, *, required: bool = True) -> dict:
    """The request body as one DICOM JSON data set (an array of exactly one is accepted)."""
    raw = request.body
    if not raw.strip():
        if required:
            raise ParseError("The request needs a DICOM JSON data set as its body.")
        return {}
    try:
        media = MediaType.parse(request.content_type or "")
    except MediaTypeError as exc:
        raise UnsupportedMediaType(request.content_type or "") from exc
    if media.mime not in BODY_TYPES:
        raise UnsupportedMediaType(
            request.content_type or "(none)", detail=f"Send the data set as {DICOM_JSON} or {DICOM_XML}."
        )
    if media.mime == DICOM_XML:
        from dicomweb.dicomxml import DicomXmlError, xml_to_json

        try:
            return xml_to_json(raw)
        except DicomXmlError as exc:
            raise ParseError(f"The body is not a valid Native DICOM Model document: {exc}") from exc
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"The body is not valid JSON: {exc}") from exc
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) and "vr" in v for k, v in parsed.items()
    ):
        raise ParseError('The body must be one DICOM JSON data set ({"ggggeeee": {"vr": …}}).')
    return parsed


class UpsView(DicomWebView):
    """Base: negotiation table, renderers, the worklist role and UpsError → HTTP."""

    accept_descriptors = WORKITEM_DESCRIPTORS
    renderer_classes = [DicomJsonRenderer, PlainJsonRenderer, DicomXmlRenderer]
    required_permissions = WORKLIST
    transaction = "retrieve"  # the PS3.18 transaction, for the HTTP status table
    operations: dict[str, str] = {}
    query_parameters: tuple[str, ...] = ()

    def handle_exception(self, exc):
        if isinstance(exc, UpsError):
            transaction = getattr(self, "current_transaction", self.transaction)
            return JsonResponse({"detail": exc.message}, status=http_status(transaction, exc.status))
        return super().handle_exception(exc)

    def location(self, workitem_uid: str) -> str:
        return f"{base_url(self.request)}/workitems/{workitem_uid}"


class WorkitemsView(UpsView):
    """``/workitems``: search (GET) and create (POST)."""

    operations = {"GET": "Search Workitems (UPS-RS)", "POST": "Create Workitem (UPS-RS)"}
    query_parameters = (
        *wq.SEARCHABLE,
        "AffectedSOPInstanceUID",
        *sorted(wq.CONTROL_PARAMETERS - {"charset"}),
    )

    def accept_descriptors(self, request=None):  # search answers like QIDO (XML as multipart)
        method = getattr(request, "method", "GET")
        return SEARCH_DESCRIPTORS if method in ("GET", "HEAD") else WORKITEM_DESCRIPTORS

    def get(self, request):
        try:
            query = wq.parse(request.query_params)
        except wq.QueryError as exc:
            raise ParseError(str(exc)) from exc
        rows = list(wq.search(query)[query.offset : query.offset + query.limit])
        if not rows:
            return HttpResponse(status=204)
        results = [self._result(row, query) for row in rows]
        return _render(results, request.dicom_choice, [])

    def _result(self, workitem, query: wq.WorkitemQuery) -> dict:
        dataset = services.public_dataset(workitem)
        if not query.include_all:
            wanted = DEFAULT_RETURN | query.match_tags | query.includefield
            dataset = {k: v for k, v in dataset.items() if k in wanted}
        dataset["00081190"] = {"vr": "UR", "Value": [self.location(workitem.workitem_uid)]}
        return dataset

    def post(self, request):
        self.current_transaction = "create"
        uid = request.query_params.get("AffectedSOPInstanceUID") or request.query_params.get("workitem")
        if uid is None:  # PS3.18 also allows the bare UID as the query string: ?{workitem}
            bare = [k for k in request.query_params if request.query_params.get(k) == ""]
            uid = bare[0] if len(bare) == 1 else None
        workitem = services.create(read_dataset(request), uid)
        response = HttpResponse(status=201)
        response["Location"] = response["Content-Location"] = self.location(workitem.workitem_uid)
        return response


class WorkitemView(UpsView):
    """``/workitems/{workitem}``: retrieve (GET) and update (POST)."""

    operations = {"GET": "Retrieve Workitem (UPS-RS)", "POST": "Update Workitem (UPS-RS)"}
    query_parameters = ("transaction-uid",)

    def get(self, request, workitem_uid: str):
        services.check_uid(workitem_uid, "workitem UID")
        return _single(services.retrieve(workitem_uid), request)

    def post(self, request, workitem_uid: str):
        self.current_transaction = "update"
        services.check_uid(workitem_uid, "workitem UID")
        transaction_uid = request.query_params.get("transaction-uid") or request.query_params.get(
            "transaction"
        )
        if transaction_uid is None:  # ?{transaction-uid}: the bare UID as the query string
            bare = [k for k in request.query_params if request.query_params.get(k) == ""]
            transaction_uid = bare[0] if len(bare) == 1 else None
        services.update(workitem_uid, read_dataset(request), transaction_uid)
        response = HttpResponse(status=200)
        response["Content-Location"] = self.location(workitem_uid)
        return response


def _single(dataset: dict, request) -> HttpResponse:
    if request.dicom_choice.media_type == DICOM_XML:
        from dicomweb.dicomxml import json_to_xml

        return HttpResponse(json_to_xml(dataset), content_type=DICOM_XML)
    body = json.dumps(dataset, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpResponse(body, content_type=request.dicom_choice.media_type)


class StateView(UpsView):
    """``/workitems/{workitem}/state``: Change Workitem State (PUT)."""

    operations = {"PUT": "Change Workitem State (UPS-RS)"}
    transaction = "change_state"

    def put(self, request, workitem_uid: str):
        services.check_uid(workitem_uid, "workitem UID")
        dataset = read_dataset(request)
        requested = services._first(dataset, services.STATE)
        transaction_uid = services._first(dataset, services.TRANSACTION_UID)
        if not requested:
            raise ParseError(
                "The body must give ProcedureStepState (0074,1000): IN PROGRESS, COMPLETED or CANCELED."
            )
        if not transaction_uid:
            raise ParseError("The body must give the TransactionUID (0008,1195).")
        outcome = services.change_state(workitem_uid, str(requested), str(transaction_uid))
        response = HttpResponse(status=http_status("change_state", outcome.status))
        if outcome.warning:
            response["Warning"] = warning_header(MESSAGES[outcome.status])
        response["Content-Location"] = self.location(workitem_uid)
        return response


class CancelRequestView(UpsView):
    """``/workitems/{workitem}/cancelrequest``: Request Cancellation (POST)."""

    operations = {"POST": "Request Cancellation (UPS-RS)"}
    transaction = "request_cancel"

    def post(self, request, workitem_uid: str):
        services.check_uid(workitem_uid, "workitem UID")
        outcome = services.request_cancel(workitem_uid, read_dataset(request, required=False))
        response = HttpResponse(status=http_status("request_cancel", outcome.status))
        if outcome.warning:
            response["Warning"] = warning_header(MESSAGES[outcome.status])
        response["Content-Location"] = self.location(workitem_uid)
        return response


SUBSCRIBE_CONTROL = {"deletionlock", "accept", "charset"}


class SubscriptionView(UpsView):
    """``/workitems/{workitem}/subscribers/{AETitle}``: subscribe (POST), unsubscribe (DELETE).

    ``{workitem}`` may be the global worklist UID or the filtered global one; the filter
    is the rest of the query string (the same keys as a search).
    """

    operations = {"POST": "Create Subscription (UPS-RS)", "DELETE": "Delete Subscription (UPS-RS)"}
    query_parameters = ("deletionlock",)
    transaction = "subscribe"

    def post(self, request, workitem_uid: str, ae_title: str):
        lock_text = (request.query_params.get("deletionlock") or "false").lower()
        if lock_text not in _TRUE | _FALSE:
            raise ParseError(f"deletionlock must be true or false, not {lock_text!r}.")
        filters = {k: v for k, v in request.query_params.items() if k.lower() not in SUBSCRIBE_CONTROL}
        if filters and workitem_uid != services.FILTERED_GLOBAL_UID:
            raise ParseError(
                f"Match keys ({', '.join(filters)}) belong only to the filtered global worklist "
                f"{services.FILTERED_GLOBAL_UID}."
            )
        try:
            services.subscribe(workitem_uid, ae_title, deletion_lock=lock_text in _TRUE, query=filters)
        except wq.QueryError as exc:
            raise ParseError(str(exc)) from exc
        response = HttpResponse(status=201)
        response["Content-Location"] = f"{base_url(request)}/subscribers/{ae_title}"
        return response

    def delete(self, request, workitem_uid: str, ae_title: str):
        services.unsubscribe(workitem_uid, ae_title)
        return HttpResponse(status=200)


class SuspendView(UpsView):
    """``/workitems/1.2.840.10008.5.1.4.34.5/subscribers/{AETitle}/suspend`` (POST)."""

    operations = {"POST": "Suspend Global Subscription (UPS-RS)"}
    transaction = "suspend"

    def post(self, request, workitem_uid: str, ae_title: str):
        services.suspend(workitem_uid, ae_title)
        return HttpResponse(status=200)


class EventChannelView(UpsView):
    """``/subscribers/{AETitle}`` over plain HTTP: the event channel is a WebSocket (426)."""

    operations = {"GET": "Open Event Channel (WebSocket)"}

    def get(self, request, ae_title: str):
        services.check_ae_title(ae_title)
        response = JsonResponse(
            {"detail": "The event channel is a WebSocket: connect with ws:// or wss:// to this URL."},
            status=426,
        )
        response["Upgrade"] = "websocket"
        response["Connection"] = "Upgrade"
        return response


# Returned by a search without includefield=all: the identifying and scheduling attributes.
DEFAULT_RETURN = {
    "00080005",  # SpecificCharacterSet
    "00080016",  # SOPClassUID
    "00080018",  # SOPInstanceUID
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "0020000D",  # StudyInstanceUID
    "0040A370",  # ReferencedRequestSequence
    "00404005",  # ScheduledProcedureStepStartDateTime
    "00404011",  # ExpectedCompletionDateTime
    "00404018",  # ScheduledWorkitemCodeSequence
    "00404025",  # ScheduledStationNameCodeSequence
    "00404026",  # ScheduledStationClassCodeSequence
    "00404027",  # ScheduledStationGeographicLocationCodeSequence
    "00404041",  # InputReadinessState
    "00741000",  # ProcedureStepState
    "00741200",  # ScheduledProcedureStepPriority
    "00741202",  # WorklistLabel
    "00741204",  # ProcedureStepLabel
}
