"""Root URLconf: the admin and the DICOMweb services, nothing else."""

from django.contrib import admin
from django.urls import include, path, re_path

from archive.ohif import viewer as ohif_viewer
from dicomweb.views.dispatch import service_root

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dicomweb", service_root),  # OPTIONS /dicomweb: capabilities (no trailing-slash redirect)
    path("dicomweb/", include("dicomweb.urls")),
    # The OHIF Viewer bundle (`make ohif`), served with index.html fallback.
    re_path(r"^viewer/?(?P<path>.*)$", ohif_viewer, name="ohif-viewer"),
]
