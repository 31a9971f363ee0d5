"""PS3.18 routes, mounted at /dicomweb/."""

from __future__ import annotations

from django.urls import path, re_path, register_converter

from dicomweb.converters import UIDConverter
from dicomweb.views.dispatch import by_method, unknown_resource
from dicomweb.views.retrieve import BulkDataView, FramesView, InstancesView, MetadataView
from dicomweb.views.store import StoreView
from dicomweb.views.wadouri import WadoUriView

register_converter(UIDConverter, "uid")

app_name = "dicomweb"

store = StoreView.as_view()
instances = InstancesView.as_view()
metadata = MetadataView.as_view()

SERIES = "studies/<uid:study_uid>/series/<uid:series_uid>"
INSTANCE = f"{SERIES}/instances/<uid:instance_uid>"

urlpatterns = [
    path("wado", by_method(get=WadoUriView.as_view()), name="wado-uri"),
    path("studies", by_method(post=store, put=store), name="studies"),
    path("studies/<uid:study_uid>", by_method(get=instances, post=store, put=store), name="study"),
    path("studies/<uid:study_uid>/metadata", by_method(get=metadata), name="study-metadata"),
    path(SERIES, by_method(get=instances), name="series"),
    path(f"{SERIES}/metadata", by_method(get=metadata), name="series-metadata"),
    path(INSTANCE, by_method(get=instances), name="instance"),
    path(f"{INSTANCE}/metadata", by_method(get=metadata), name="instance-metadata"),
    path(f"{INSTANCE}/frames/<str:frames>", by_method(get=FramesView.as_view()), name="instance-frames"),
    path(f"{INSTANCE}/bulkdata/<path:path>", by_method(get=BulkDataView.as_view()), name="instance-bulkdata"),
    re_path(r"^.*$", unknown_resource),
]
