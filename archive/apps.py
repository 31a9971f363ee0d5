from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

# The groups that grant DICOMweb permissions (README "Authentication and roles").
ROLE_PERMISSIONS = {
    "read": ["read_dicom"],
    "write": ["write_dicom"],
    "delete": ["delete_dicom"],
    "worklist": ["manage_worklist"],
}


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "Archive"

    def ready(self) -> None:
        from pydicom import config as pydicom_config

        # Process-global: set once here, never per request. Ingest is lenient (problems
        # become store warnings from archive.validation), so conversions must not raise.
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.writing_validation_mode = pydicom_config.WARN
        from archive import checks  # noqa: F401  (registers system checks)

        post_migrate.connect(_ensure_role_groups, sender=self)

        from django.db.backends.signals import connection_created

        from archive.dblock import anchor_sqlite

        connection_created.connect(anchor_sqlite, dispatch_uid="archive.anchor_sqlite")


def _ensure_role_groups(sender: AppConfig, **kwargs: object) -> None:
    """Create the role groups with their permissions (idempotent, after every migrate)."""
    from django.contrib.auth.models import Group, Permission

    for group_name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = Permission.objects.filter(content_type__app_label="archive", codename__in=codenames)
        group.permissions.add(*permissions)
