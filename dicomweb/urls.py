"""PS3.18 routes, mounted at /dicomweb/."""

from __future__ import annotations

from django.urls import path, register_converter

from dicomweb.converters import UIDConverter
from dicomweb.views.store import StoreView

register_converter(UIDConverter, "uid")

app_name = "dicomweb"

urlpatterns = [
    path("studies", StoreView.as_view(), name="studies"),
    path("studies/<uid:study_uid>", StoreView.as_view(), name="study"),
]
