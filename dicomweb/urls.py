"""PS3.18 routes, mounted at /dicomweb/."""

from __future__ import annotations

from django.urls import path, re_path, register_converter

from dicomweb.converters import UIDConverter
from dicomweb.views.changefeed import ChangeFeedLatestView, ChangeFeedView
from dicomweb.views.delete import DeleteView
from dicomweb.views.dispatch import by_method, service_root, unknown_resource
from dicomweb.views.rendered import RenderedView, ThumbnailView
from dicomweb.views.retrieve import BulkDataView, FramesView, InstancesView, MetadataView
from dicomweb.views.search import InstanceSearchView, SeriesSearchView, StudySearchView
from dicomweb.views.store import StoreView
from dicomweb.views.wadouri import WadoUriView
from workitems.urls import urlpatterns as workitem_urlpatterns

register_converter(UIDConverter, "uid")

app_name = "dicomweb"

store = StoreView.as_view()
instances = InstancesView.as_view()
metadata = MetadataView.as_view()
delete = DeleteView.as_view()
rendered = RenderedView.as_view()
thumbnail = ThumbnailView.as_view()

SERIES = "studies/<uid:study_uid>/series/<uid:series_uid>"
INSTANCE = f"{SERIES}/instances/<uid:instance_uid>"

urlpatterns = [
    path("", service_root, name="service"),
    path("wado", by_method(get=WadoUriView.as_view()), name="wado-uri"),
    path("studies", by_method(get=StudySearchView.as_view(), post=store, put=store), name="studies"),
    path("series", by_method(get=SeriesSearchView.as_view()), name="all-series"),
    path("instances", by_method(get=InstanceSearchView.as_view()), name="all-instances"),
    path("studies/<uid:study_uid>/series", by_method(get=SeriesSearchView.as_view()), name="study-series"),
    path(
        "studies/<uid:study_uid>/instances",
        by_method(get=InstanceSearchView.as_view()),
        name="study-instances",
    ),
    path(f"{SERIES}/instances", by_method(get=InstanceSearchView.as_view()), name="series-instances"),
    path(
        "studies/<uid:study_uid>",
        by_method(get=instances, post=store, put=store, delete=delete),
        name="study",
    ),
    path("studies/<uid:study_uid>/metadata", by_method(get=metadata), name="study-metadata"),
    path(SERIES, by_method(get=instances, delete=delete), name="series"),
    path(f"{SERIES}/metadata", by_method(get=metadata), name="series-metadata"),
    path(INSTANCE, by_method(get=instances, delete=delete), name="instance"),
    path(f"{INSTANCE}/metadata", by_method(get=metadata), name="instance-metadata"),
    path(f"{INSTANCE}/frames/<str:frames>", by_method(get=FramesView.as_view()), name="instance-frames"),
    path(f"{INSTANCE}/bulkdata/<path:path>", by_method(get=BulkDataView.as_view()), name="instance-bulkdata"),
    path("changefeed", by_method(get=ChangeFeedView.as_view()), name="changefeed"),
    path("changefeed/latest", by_method(get=ChangeFeedLatestView.as_view()), name="changefeed-latest"),
    # rendered and thumbnail resources (issue 5)
    path("studies/<uid:study_uid>/rendered", by_method(get=rendered), name="study-rendered"),
    path(f"{SERIES}/rendered", by_method(get=rendered), name="series-rendered"),
    path(f"{INSTANCE}/rendered", by_method(get=rendered), name="instance-rendered"),
    path(f"{INSTANCE}/frames/<str:frames>/rendered", by_method(get=rendered), name="frames-rendered"),
    path("studies/<uid:study_uid>/thumbnail", by_method(get=thumbnail), name="study-thumbnail"),
    path(f"{SERIES}/thumbnail", by_method(get=thumbnail), name="series-thumbnail"),
    path(f"{INSTANCE}/thumbnail", by_method(get=thumbnail), name="instance-thumbnail"),
    path(f"{INSTANCE}/frames/<str:frames>/thumbnail", by_method(get=thumbnail), name="frames-thumbnail"),
    *workitem_urlpatterns,  # UPS-RS (worklist): /workitems…, /subscribers/{AETitle}
    re_path(r"^.*$", unknown_resource),
]
