from django.apps import AppConfig


class DicomWebConfig(AppConfig):
    name = "dicomweb"
    verbose_name = "DICOMweb"
