"""Root URLconf: the admin and the DICOMweb services, nothing else."""

from django.contrib import admin
from django.urls import include, path

from dicomweb.views.dispatch import service_root

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dicomweb", service_root),  # OPTIONS /dicomweb: capabilities (no trailing-slash redirect)
    path("dicomweb/", include("dicomweb.urls")),
]
