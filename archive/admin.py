"""The admin for radiology staff: find, see, upload, correct and delete studies.

Everything goes through the archive's own services, never around them: corrections
through ``archive.corrections`` (new blob versions, change feed, original kept), deletes
through ``archive.deletion`` (the DICOMweb delete path), uploads through
``archive.ingest.store`` (the STOW path). Permissions come from the same role groups as
the API (read → view, write → correct/upload, delete → delete), and every view, change,
delete and upload lands in the audit trail (``archive.audit``).

Lists stay fast on a large archive: the default order is the QIDO index
(``-updated_at, -id``), related rows come with ``list_select_related``, thumbnails' UIDs
come from correlated subqueries in the page query itself (no per-row queries), and the
search box builds the same conditions as QIDO (``archive.query.match_q``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from archive import adminviews, audit, corrections, deletion
from archive.adminimages import thumbnail_url
from archive.models import AuditEvent, Instance, Patient, Series, Study

admin.site.site_header = "Archway"
admin.site.site_title = "Archway admin"
admin.site.index_title = "Archive"
# Full width for the lists on a laptop screen; the header has the main links instead.
admin.site.enable_nav_sidebar = False

ROLE = {
    "read": "archive.read_dicom",
    "write": "archive.write_dicom",
    "delete": "archive.delete_dicom",
    "worklist": "archive.manage_worklist",  # the worklist page (workitems.admin)
}


def has_role(request: HttpRequest, role: str) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(ROLE[role]))


class RoleAdmin(admin.ModelAdmin):
    """Admin permissions from the API's role groups instead of per-model permissions."""

    change_role: str | None = None  # None: read-only
    show_full_result_count = False  # one COUNT(*) per page is enough on 200,000 studies
    list_per_page = 50
    # Links down the hierarchy filter by the parent's primary key.
    parent_lookups: tuple[str, ...] = ()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role(request, "read")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request, "read")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # data arrives by STOW, import or the upload page

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.change_role is not None and has_role(request, self.change_role)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request, "delete")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup in self.parent_lookups:
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_deleted_objects(self, objs, request):
        """A summary of what goes (counts and size), not one line per instance."""
        lines = [self.deletion_summary(obj) for obj in objs]
        perms_needed = set() if has_role(request, "delete") else {"the delete role"}
        return lines, {self.model._meta.verbose_name_plural: len(lines)}, perms_needed, []

    def deletion_summary(self, obj: Any) -> str:
        return str(obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            removed = self.delete_through_service(obj)
        except deletion.NothingToDelete:
            return
        audit.record(
            audit.Action.DELETE,
            source="admin",
            request=request,
            status=200,
            **self.audit_uids(obj),
            detail=f"deleted {len(removed)} instance(s): {self.deletion_summary(obj)}",
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in list(queryset):
            self.delete_model(request, obj)

    def delete_through_service(self, obj: Any) -> deletion.Deleted:
        raise NotImplementedError

    def audit_uids(self, obj: Any) -> dict[str, str]:
        return {}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        response = super().changeform_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and object_id and getattr(response, "status_code", 0) == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                audit.record(
                    audit.Action.VIEW,
                    source="admin",
                    request=request,
                    status=200,
                    **self.audit_uids(obj),
                    detail=str(obj),
                )
        return response


def _thumbnail(study_uid: str | None, series_uid: str | None, instance_uid: str | None) -> str:
    if not (study_uid and series_uid and instance_uid):
        return format_html('<span class="aw-thumb aw-thumb-empty" title="no image">-</span>')
    return format_html(
        '<img class="aw-thumb" loading="lazy" alt="thumbnail" src="{}" width="64" height="64">',
        thumbnail_url(study_uid, series_uid, instance_uid),
    )


def _first_image(outer: str) -> QuerySet[Instance]:
    """The first image (lowest series, then instance number) under the outer row."""
    return Instance.objects.filter(**{outer: OuterRef("pk")}, number_of_frames__gt=0).order_by(
        "series_id", "instance_number", "pk"
    )


# --- patients --------------------------------------------------------------------------------


class CorrectionForm(forms.ModelForm):
    """Checks the new values against their DICOM VR before anything is rewritten."""

    keywords: dict[str, str] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                corrections.validate(_changes(self, self.keywords))
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return cleaned


class PatientForm(CorrectionForm):
    class Meta:
        model = Patient
        fields = ["patient_name", "patient_id", "patient_birth_date", "patient_sex"]
        widgets = {"patient_sex": forms.Select(choices=[("", "—"), ("M", "M"), ("F", "F"), ("O", "O")])}
        help_texts = {
            "patient_name": "DICOM person name: Family^Given^Middle^Prefix^Suffix.",
            "patient_id": "Changing it moves the studies to that patient ID.",
        }


PATIENT_KEYWORDS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
}
PatientForm.keywords = PATIENT_KEYWORDS
STUDY_KEYWORDS = {
    **{k: v for k, v in PATIENT_KEYWORDS.items() if k != "patient_id"},
    "accession_number": "AccessionNumber",
    "study_description": "StudyDescription",
    "referring_physician_name": "ReferringPhysicianName",
}


def _dicom_value(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return "" if value is None else str(value)


def _changes(form: forms.ModelForm, keywords: dict[str, str]) -> dict[str, str]:
    return {
        keywords[name]: _dicom_value(form.cleaned_data[name])
        for name in form.changed_data
        if name in keywords
    }


class CorrectingAdmin(RoleAdmin):
    """Saving the form is a correction of the stored instances, not a row update."""

    change_role = "write"
    keywords: dict[str, str] = {}

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        changes = _changes(form, self.keywords)
        if not changes:
            return
        study_uids = self.study_uids(obj)
        try:
            result = corrections.correct_studies(study_uids, changes)
        except (ValueError, corrections.CorrectionError) as exc:
            messages.error(request, f"Correction failed: {exc}")
            request.archway_correction_failed = True  # type: ignore[attr-defined]
            return
        audit.record(
            audit.Action.CHANGE,
            source="admin",
            request=request,
            status=200,
            study_uid=study_uids[0] if len(study_uids) == 1 else "",
            detail="; ".join(
                f"{k}: {form.initial.get(n)!s} → {changes[k]}"
                for n, k in self.keywords.items()
                if k in changes
            )
            + f" ({result.instances} instance(s) rewritten in {len(study_uids)} study(ies))",
        )
        messages.info(
            request,
            f"Corrected {result.instances} instance(s) in {len(study_uids)} study(ies); "
            "the original version is kept (msdicom-request-original: true).",
        )
        self.relocate(obj, study_uids)

    def save_related(self, request, form, formsets, change) -> None:
        pass  # nothing related is edited here

    def log_change(self, request, obj, message):
        if getattr(request, "archway_correction_failed", False):
            return None
        return super().log_change(request, obj, message)

    def study_uids(self, obj: Any) -> list[str]:
        raise NotImplementedError

    def relocate(self, obj: Any, study_uids: list[str]) -> None:
        """A correction may re-create rows (new primary keys): point ``obj`` at the new ones."""


@admin.register(Patient)
class PatientAdmin(CorrectingAdmin):
    form = PatientForm
    keywords = PATIENT_KEYWORDS
    list_display = ("patient_name", "patient_id", "patient_birth_date", "patient_sex", "studies_link")
    search_fields = ("patient_name_norm",)  # replaced by get_search_results
    search_help_text = "Patient name (any order, accents ignored) or exact patient ID."
    ordering = ("-updated_at", "-id")

    @admin.display(description="studies")
    def studies_link(self, obj: Patient) -> str:
        url = reverse("admin:archive_study_changelist") + f"?patient__id__exact={obj.pk}"
        return format_html('<a href="{}">studies →</a>', url)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        from archive.query import match_q

        # The same indexed conditions as QIDO: PatientID (case-insensitive) or every word
        # of the query starting a word of a study's patient name (PersonNameWord).
        by_name = Study.objects.filter(match_q("PatientName", "fuzzy", term)).values("patient_id")
        return queryset.filter(Q(patient_id__iexact=term) | Q(pk__in=by_name)), False

    def study_uids(self, obj: Patient) -> list[str]:
        return list(
            Study.objects.filter(patient_id=obj.pk).order_by("pk").values_list("study_uid", flat=True)
        )

    def relocate(self, obj: Patient, study_uids: list[str]) -> None:
        moved = Study.objects.filter(study_uid__in=study_uids).values_list("patient_id", flat=True).first()
        if moved:
            obj.pk = moved

    def deletion_summary(self, obj: Patient) -> str:
        studies = obj.studies.count()
        return f"Patient {obj}: {studies} study(ies) and all their series and instances"

    def delete_through_service(self, obj: Patient) -> deletion.Deleted:
        uids: list[str] = []
        keys: list[str] = []
        for study_uid in self.study_uids(obj):
            removed = deletion.delete_study(study_uid)
            uids += removed.instance_uids
            keys += removed.blob_keys
        return deletion.Deleted(tuple(uids), tuple(keys))


# --- studies ---------------------------------------------------------------------------------


class ModalityFilter(admin.SimpleListFilter):
    title = "modality"
    parameter_name = "modality"

    def lookups(self, request, model_admin):
        found = Series.objects.order_by().values_list("modality", flat=True).distinct()
        return [(m, m) for m in sorted({m for m in found if m})]

    def queryset(self, request, queryset):
        if self.value():
            from archive.query import match_q

            target = "study" if queryset.model is Study else "series"
            if target == "study":
                return queryset.filter(match_q("ModalitiesInStudy", "single", self.value(), "study"))
            return queryset.filter(modality__iexact=self.value())
        return queryset


class StudyDateFilter(admin.SimpleListFilter):
    title = "study date"
    parameter_name = "when"
    periods = {"today": 0, "7d": 7, "30d": 30, "365d": 365}

    def lookups(self, request, model_admin):
        return [("today", "Today"), ("7d", "Past 7 days"), ("30d", "Past 30 days"), ("365d", "Past year")]

    def queryset(self, request, queryset):
        days = self.periods.get(self.value() or "")
        if days is None:
            return queryset
        since = timezone.localdate() - dt.timedelta(days=days)
        return queryset.filter(study_date__gte=since)


class StudyForm(CorrectionForm):
    keywords = STUDY_KEYWORDS
    patient_id_text = forms.CharField(label="Patient ID", required=False, disabled=True)

    class Meta:
        model = Study
        fields = [
            "patient_name",
            "patient_birth_date",
            "patient_sex",
            "accession_number",
            "study_description",
            "referring_physician_name",
        ]
        widgets = {"patient_sex": forms.Select(choices=[("", "—"), ("M", "M"), ("F", "F"), ("O", "O")])}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["patient_id_text"].initial = self.instance.patient.patient_id
            self.fields["patient_id_text"].help_text = "Change it on the patient's page."


@admin.register(Study)
class StudyAdmin(CorrectingAdmin):
    form = StudyForm
    keywords = STUDY_KEYWORDS
    list_display = (
        "thumbnail",
        "study_date",
        "patient_link",
        "patient_identifier",
        "modalities",
        "study_description",
        "accession_number",
        "number_of_series",
        "number_of_instances",
        "size",
        "series_link",
    )
    list_display_links = ("study_date", "study_description")
    list_select_related = ("patient",)
    list_filter = (ModalityFilter, StudyDateFilter)
    date_hierarchy = "study_date"
    search_fields = ("patient_name_norm",)  # replaced by get_search_results
    search_help_text = (
        "Patient name (words in any order, case and accents ignored), patient ID, "
        "accession number or the start of the study description."
    )
    ordering = ("-updated_at", "-id")
    sortable_by = ("study_date", "number_of_instances", "size")
    parent_lookups = ("patient__id__exact",)
    change_form_template = "admin/archive/study/change_form.html"
    change_list_template = "admin/archive/study/change_list.html"
    readonly_fields = (
        "study_uid",
        "study_date",
        "modalities_in_study",
        "number_of_series",
        "number_of_instances",
    )
    fieldsets = (
        ("Patient", {"fields": ("patient_name", "patient_id_text", "patient_birth_date", "patient_sex")}),
        (
            "Study",
            {
                "fields": (
                    "study_uid",
                    "study_date",
                    "accession_number",
                    "study_description",
                    "referring_physician_name",
                    "modalities_in_study",
                    "number_of_series",
                    "number_of_instances",
                )
            },
        ),
    )

    def get_queryset(self, request):
        first = _first_image("study")
        return (
            super()
            .get_queryset(request)
            .annotate(
                thumb_series=Subquery(first.values("series__series_uid")[:1]),
                thumb_instance=Subquery(first.values("instance_uid")[:1]),
            )
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        from archive.query import match_q

        condition = (
            match_q("PatientName", "fuzzy", term)
            | match_q("PatientID", "single", term)
            | match_q("AccessionNumber", "single", term)
            | match_q("StudyDescription", "wildcard", term.replace("*", "").replace("?", "") + "*")
        )
        return queryset.filter(condition), False

    @admin.display(description="")
    def thumbnail(self, obj: Study) -> str:
        return _thumbnail(
            obj.study_uid, getattr(obj, "thumb_series", None), getattr(obj, "thumb_instance", None)
        )

    @admin.display(description="patient", ordering="patient_name_norm")
    def patient_link(self, obj: Study) -> str:
        url = reverse("admin:archive_patient_change", args=[obj.patient_id])
        return format_html(
            '<a href="{}">{}</a>', url, obj.patient_name.replace("^", " ").strip() or "(no name)"
        )

    @admin.display(description="patient ID")
    def patient_identifier(self, obj: Study) -> str:
        return obj.patient.patient_id

    @admin.display(description="modality")
    def modalities(self, obj: Study) -> str:
        return obj.modalities_in_study.replace("\\", ", ")

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Study) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="series")
    def series_link(self, obj: Study) -> str:
        url = reverse("admin:archive_series_changelist") + f"?study__id__exact={obj.pk}"
        return format_html('<a href="{}">series →</a>', url)

    def study_uids(self, obj: Study) -> list[str]:
        return [obj.study_uid]

    def relocate(self, obj: Study, study_uids: list[str]) -> None:
        obj.pk = Study.objects.filter(study_uid=obj.study_uid).values_list("pk", flat=True).first() or obj.pk

    def audit_uids(self, obj: Study) -> dict[str, str]:
        return {"study_uid": obj.study_uid}

    def deletion_summary(self, obj: Study) -> str:
        return (
            f"Study {obj.study_uid} ({obj.study_date or 'no date'}, "
            f"{obj.study_description or 'no description'}) "
            f"of {obj.patient_name or '(no name)'}: {obj.number_of_series} series, "
            f"{obj.number_of_instances} instance(s), {filesizeformat(obj.size_bytes)}"
        )

    def delete_through_service(self, obj: Study) -> deletion.Deleted:
        return deletion.delete_study(obj.study_uid)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        study = self.get_object(request, object_id)
        if study is not None:
            first = _first_image("series")
            series = (
                Series.objects.filter(study_id=study.pk)
                .order_by("series_number", "pk")
                .annotate(thumb_instance=Subquery(first.values("instance_uid")[:1]))
            )
            extra_context["series_rows"] = [
                {
                    "series": s,
                    "thumbnail": _thumbnail(study.study_uid, s.series_uid, s.thumb_instance),
                    "viewer_url": reverse("admin:archive_series_viewer", args=[s.pk]),
                    "instances_url": reverse("admin:archive_instance_changelist")
                    + f"?series__id__exact={s.pk}",
                    "size": filesizeformat(s.size_bytes),
                }
                for s in series
            ]
            extra_context["zip_url"] = reverse("admin:archive_study_download", args=[study.pk])
            extra_context["patient_url"] = reverse("admin:archive_patient_change", args=[study.patient_id])
            extra_context["ohif"] = adminviews.ohif_link(study.study_uid)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(adminviews.upload), name="archive_study_upload"),
            path("<int:pk>/download/", view(adminviews.download_study), name="archive_study_download"),
            *super().get_urls(),
        ]


# --- series ----------------------------------------------------------------------------------


@admin.register(Series)
class SeriesAdmin(RoleAdmin):
    list_display = (
        "thumbnail",
        "series_number",
        "modality",
        "series_description",
        "series_date",
        "number_of_instances",
        "size",
        "study_link",
        "viewer_link",
    )
    list_display_links = ("series_number", "series_description")
    list_select_related = ("study",)
    list_filter = (ModalityFilter,)
    ordering = ("-updated_at", "-id")
    sortable_by = ("series_number", "series_date", "number_of_instances")
    parent_lookups = ("study__id__exact",)
    search_fields = ("series_uid",)
    search_help_text = "Exact Series Instance UID or series description start."
    readonly_fields = (
        "series_uid",
        "study",
        "modality",
        "series_number",
        "series_description",
        "series_date",
        "body_part_examined",
        "manufacturer_model_name",
        "number_of_instances",
        "size_bytes",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        first = _first_image("series")
        return (
            super().get_queryset(request).annotate(thumb_instance=Subquery(first.values("instance_uid")[:1]))
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(series_uid=term) | Q(series_description__istartswith=term)), False

    @admin.display(description="")
    def thumbnail(self, obj: Series) -> str:
        return _thumbnail(obj.study.study_uid, obj.series_uid, getattr(obj, "thumb_instance", None))

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Series) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="study")
    def study_link(self, obj: Series) -> str:
        url = reverse("admin:archive_study_change", args=[obj.study_id])
        return format_html('<a href="{}">{}</a>', url, obj.study)

    @admin.display(description="")
    def viewer_link(self, obj: Series) -> str:
        return format_html(
            '<a href="{}">view images</a>', reverse("admin:archive_series_viewer", args=[obj.pk])
        )

    def audit_uids(self, obj: Series) -> dict[str, str]:
        return {"study_uid": obj.study.study_uid, "series_uid": obj.series_uid}

    def deletion_summary(self, obj: Series) -> str:
        return (
            f"Series {obj.series_uid} ({obj.modality} {obj.series_description}) of study "
            f"{obj.study.study_uid}: {obj.number_of_instances} instance(s), {filesizeformat(obj.size_bytes)}"
        )

    def delete_through_service(self, obj: Series) -> deletion.Deleted:
        return deletion.delete_series(obj.study.study_uid, obj.series_uid)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/viewer/", view(adminviews.viewer), name="archive_series_viewer"),
            *super().get_urls(),
        ]


# --- instances -------------------------------------------------------------------------------


@admin.register(Instance)
class InstanceAdmin(RoleAdmin):
    list_display = (
        "thumbnail",
        "instance_number",
        "instance_uid",
        "sop_class_uid",
        "frames",
        "dimensions",
        "size",
        "series_link",
        "download_link",
    )
    list_display_links = ("instance_number", "instance_uid")
    list_select_related = ("series", "study")
    ordering = ("series_id", "instance_number", "id")
    sortable_by = ("instance_number",)
    parent_lookups = ("series__id__exact", "study__id__exact")
    search_fields = ("instance_uid",)
    search_help_text = "Exact SOP Instance UID."
    exclude = ("metadata", "frame_table")
    readonly_fields = (
        "instance_uid",
        "series",
        "study",
        "sop_class_uid",
        "instance_number",
        "rows",
        "columns",
        "number_of_frames",
        "transfer_syntax_uid",
        "size_bytes",
        "sha256",
        "blob_key",
        "original_blob_key",
        "metadata_table",
    )
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(instance_uid=term), False) if term else (queryset, False)

    @admin.display(description="")
    def thumbnail(self, obj: Instance) -> str:
        if not obj.number_of_frames:
            return _thumbnail(None, None, None)
        return _thumbnail(obj.study.study_uid, obj.series.series_uid, obj.instance_uid)

    @admin.display(description="frames")
    def frames(self, obj: Instance) -> int:
        return obj.number_of_frames

    @admin.display(description="size (px)")
    def dimensions(self, obj: Instance) -> str:
        return f"{obj.columns} x {obj.rows}" if obj.rows and obj.columns else "-"

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Instance) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="series")
    def series_link(self, obj: Instance) -> str:
        url = reverse("admin:archive_series_change", args=[obj.series_id])
        return format_html('<a href="{}">{}</a>', url, obj.series)

    @admin.display(description="")
    def download_link(self, obj: Instance) -> str:
        url = reverse("admin:archive_instance_download", args=[obj.pk])
        return format_html('<a href="{}" download>.dcm</a>', url)

    @admin.display(description="metadata")
    def metadata_table(self, obj: Instance) -> str:
        rows = adminviews.metadata_rows(obj.metadata)
        return format_html(
            '<table class="aw-meta"><thead><tr><th>tag</th><th>keyword</th><th>VR</th><th>value</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    def audit_uids(self, obj: Instance) -> dict[str, str]:
        return {
            "study_uid": obj.study.study_uid,
            "series_uid": obj.series.series_uid,
            "instance_uid": obj.instance_uid,
        }

    def deletion_summary(self, obj: Instance) -> str:
        return (
            f"Instance {obj.instance_uid} (number {obj.instance_number}) of series {obj.series}: "
            f"{filesizeformat(obj.size_bytes)}"
        )

    def delete_through_service(self, obj: Instance) -> deletion.Deleted:
        return deletion.delete_instance(obj.study.study_uid, obj.series.series_uid, obj.instance_uid)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/download/", view(adminviews.download_instance), name="archive_instance_download"),
            *super().get_urls(),
        ]


# --- audit trail -----------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is evidence, so nobody edits or deletes it here."""

    list_display = (
        "timestamp",
        "username",
        "action",
        "source",
        "status",
        "remote_addr",
        "study_uid",
        "short_path",
    )
    list_filter = ("action", "source")
    search_fields = ("=username", "=study_uid", "=instance_uid")
    date_hierarchy = "timestamp"
    show_full_result_count = False
    list_per_page = 100

    def has_module_permission(self, request):
        return has_role(request, "read")

    def has_view_permission(self, request, obj=None):
        return has_role(request, "read")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="request")
    def short_path(self, obj: AuditEvent) -> str:
        text = f"{obj.method} {obj.path}"
        return text if len(text) <= 90 else text[:87] + "…"
