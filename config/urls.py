"""Root URLconf: the admin and the DICOMweb services, nothing else."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dicomweb/", include("dicomweb.urls")),
]
