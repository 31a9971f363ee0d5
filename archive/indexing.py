"""Write one stored instance into the index, inside the caller's transaction.

Study and series rows are locked (``select_for_update``) while their counts and
latest-wins attributes change, so concurrent stores into one study on PostgreSQL
serialize on that row instead of losing updates. SQLite serializes writers anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from archive import fastsql, levels, studyresult, values
from archive.models import Instance, Patient, PersonNameWord, Series, Study
from archive.reader import InstanceHeader
from archive.signals import instance_stored

T = {  # tag numbers used below, named once
    "PatientName": 0x00100010,
    "PatientID": 0x00100020,
    "IssuerOfPatientID": 0x00100021,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "StudyDate": 0x00080020,
    "StudyTime": 0x00080030,
    "AccessionNumber": 0x00080050,
    "StudyDescription": 0x00081030,
    "ReferringPhysicianName": 0x00080090,
    "StudyID": 0x00200010,
    "Modality": 0x00080060,
    "SeriesNumber": 0x00200011,
    "SeriesDescription": 0x0008103E,
    "SeriesDate": 0x00080021,
    "SeriesTime": 0x00080031,
    "ManufacturerModelName": 0x00081090,
    "PerformedProcedureStepStartDate": 0x00400244,
    "PerformedProcedureStepStartTime": 0x00400245,
    "BodyPartExamined": 0x00180015,
    "Laterality": 0x00200060,
    "InstanceNumber": 0x00200013,
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "BitsAllocated": 0x00280100,
}


@dataclass(frozen=True, slots=True)
class Identifiers:
    study_uid: str
    series_uid: str
    instance_uid: str
    sop_class_uid: str
    patient_id: str


@dataclass(frozen=True, slots=True)
class BlobFacts:
    key: str
    size: int
    sha256: str
    version: int


def _patient_fields(meta: dict) -> dict:
    name = values.person_name(meta, T["PatientName"])
    return {
        "patient_name": name,
        "patient_name_norm": values.normalize_name(name),
        "patient_birth_date": values.date(meta, T["PatientBirthDate"]),
        "patient_sex": values.text(meta, T["PatientSex"], 16),
    }


def _study_fields(meta: dict, ids: Identifiers) -> dict:
    referring = values.person_name(meta, T["ReferringPhysicianName"])
    return {
        **_patient_fields(meta),
        "study_date": values.date(meta, T["StudyDate"]),
        "study_time": values.time(meta, T["StudyTime"]),
        "accession_number": values.text(meta, T["AccessionNumber"], 64),
        "study_description": values.text(meta, T["StudyDescription"], 64),
        "referring_physician_name": referring,
        "referring_physician_name_norm": values.normalize_name(referring),
        "study_id": values.text(meta, T["StudyID"], 16),
        "attributes": levels.subset(meta, levels.STUDY_TAGS),
    }


def _series_fields(meta: dict) -> dict:
    return {
        "modality": values.text(meta, T["Modality"], 16),
        "series_number": values.integer(meta, T["SeriesNumber"]),
        "series_description": values.text(meta, T["SeriesDescription"], 64),
        "series_date": values.date(meta, T["SeriesDate"]),
        "series_time": values.time(meta, T["SeriesTime"]),
        "manufacturer_model_name": values.text(meta, T["ManufacturerModelName"], 64),
        "performed_procedure_step_start_date": values.date(meta, T["PerformedProcedureStepStartDate"]),
        "performed_procedure_step_start_time": values.time(meta, T["PerformedProcedureStepStartTime"]),
        "body_part_examined": values.text(meta, T["BodyPartExamined"], 16),
        "laterality": values.text(meta, T["Laterality"], 16),
        "attributes": levels.subset(meta, levels.SERIES_TAGS),
    }


def _add_to_set(joined: str, item: str) -> str:
    items = {value for value in joined.split("\\") if value}
    if item:
        items.add(item)
    return "\\".join(sorted(items))


def _locked_or_created(model, lookup: dict, defaults: dict):
    """Lock the row (``FOR UPDATE`` where supported) or create it; (row, created).

    The lookup is plain SQL (``archive.fastsql``: this runs for every stored instance)
    and loads only the fields ``index_instance`` compares. Creation happens once per
    study or series, so only that path pays for the ORM and a savepoint, which lets a
    concurrent creator on PostgreSQL lose the race gracefully.
    """
    fields = [*lookup, *defaults, *_EXTRA_FIELDS.get(model, ())]
    row = fastsql.select_one(model, lookup, fields, lock=True)
    if row is not None:
        return row, False
    try:
        with transaction.atomic():
            created = model.objects.create(**lookup, **defaults)
    except IntegrityError:
        return fastsql.select_one(model, lookup, fields, lock=True), False
    return fastsql.Row(
        {"id": created.pk, **{name: getattr(created, name) for name in _attnames(model, fields)}}
    ), True


def _attnames(model, fields) -> list[str]:
    return [model._meta.get_field(name).attname for name in fields]


# Fields index_instance reads beyond the ones it compares.
_EXTRA_FIELDS = {
    Study: ("modalities_in_study", "sop_classes_in_study", "number_of_series", "number_of_instances"),
    Series: ("study_id",),
}


def _changed(row, fields: dict) -> dict:
    return {name: value for name, value in fields.items() if getattr(row, name) != value}


class IndexBatch:
    """What the instances indexed in one transaction share: their parent rows and counts.

    A STOW request usually sends a series or a study: every instance would read and lock
    the same patient, study and series rows and update their counts. Within one
    transaction those rows cannot change under us (SQLite has one writer; PostgreSQL rows
    are locked ``FOR UPDATE`` by the first read), so each is read once, kept here with
    the values this batch gave it, and written once by :meth:`apply` — latest wins for
    attributes, increments summed for counts — before the transaction commits.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[type, tuple], tuple[fastsql.Row, bool]] = {}
        self.by_pk: dict[tuple[type, int], fastsql.Row] = {}
        self.changes: dict[tuple[type, int], dict] = {}
        self.increments: dict[tuple[type, int], dict[str, int]] = {}

    def row(self, model, lookup: dict, defaults: dict) -> tuple[fastsql.Row, bool]:
        """The row (locked or created by this batch) and whether this call created it."""
        key = (model, tuple(lookup.values()))
        found = self.rows.get(key)
        if found is not None:
            return found[0], False
        row, created = _locked_or_created(model, lookup, defaults)
        self.rows[key] = (row, created)
        self.by_pk[(model, row.pk)] = row
        return row, created

    def change(self, model, row, changes: dict, increments: dict[str, int] | None = None) -> None:
        """Record attribute changes (also applied to the cached row) and count increments."""
        key = (model, row.pk)
        if changes:
            row.__dict__.update(changes)
            self.changes.setdefault(key, {}).update(changes)
        else:
            self.changes.setdefault(key, {})
        if increments:
            counts = self.increments.setdefault(key, {})
            for name, amount in increments.items():
                counts[name] = counts.get(name, 0) + amount

    def apply(self, now) -> None:
        """One UPDATE per touched row: its final attributes, ``updated_at`` and summed counts.

        A study's ready search result (``Study.search_json``) is rewritten in the same
        UPDATE from the row as this batch leaves it: the counts the row was read with
        (locked, so current) plus this batch's increments.
        """
        for (model, pk), changes in self.changes.items():
            increments = self.increments.get((model, pk))
            values = {**changes, "updated_at": now}
            if model is Study:
                row = self.by_pk[(model, pk)]
                counts = increments or {}
                values["search_json"] = studyresult.ready_text(
                    study_uid=row.study_uid,
                    attributes=row.attributes,
                    modalities=row.modalities_in_study,
                    number_of_series=row.number_of_series + counts.get("number_of_series", 0),
                    number_of_instances=row.number_of_instances + counts.get("number_of_instances", 0),
                )
                values["search_json_at"] = now
            fastsql.update(model, pk, values, increments)
        self.changes.clear()
        self.increments.clear()


def index_instance(
    header: InstanceHeader,
    meta: dict,
    ids: Identifiers,
    blob: BlobFacts,
    *,
    replace: bool,
    batch: IndexBatch | None = None,
) -> tuple[Instance, Instance | None]:
    """Index one instance; return it and the row it replaced (PUT upsert), if any.

    Must run inside ``transaction.atomic()``. Sends ``instance_stored``. With ``batch``
    (several instances in one transaction), parent rows are read once per batch and
    their updates left to ``batch.apply()``, which the caller runs before commit;
    without it they are applied here. The common case (another instance of an existing
    series) then costs five statements: read patient, study and series, insert the
    instance, update study and series. Counts are incremented in SQL on locked rows, so
    concurrent stores into one study never lose an update.
    """
    own_batch = batch is None
    batch = batch if batch is not None else IndexBatch()
    replaced: Instance | None = None
    if replace:
        replaced = Instance.objects.select_for_update().filter(instance_uid=ids.instance_uid).first()
        if replaced is not None:
            detach_instance(replaced)
    now = timezone.now()

    issuer = values.text(meta, T["IssuerOfPatientID"], 64)
    patient_fields = _patient_fields(meta)
    patient, created = batch.row(
        Patient, {"patient_id": ids.patient_id, "issuer_of_patient_id": issuer}, patient_fields
    )
    if not created and (changes := _changed(patient, patient_fields)):
        batch.change(Patient, patient, changes)

    study_fields = {**_study_fields(meta, ids), "patient_id": patient.pk}
    study, study_created = batch.row(Study, {"study_uid": ids.study_uid}, study_fields)
    series_fields = _series_fields(meta)
    series, series_created = batch.row(
        Series, {"series_uid": ids.series_uid}, {**series_fields, "study_id": study.pk}
    )

    table = header.frame_table
    fields = {
        "instance_uid": ids.instance_uid,
        "series": series.pk,
        "study": study.pk,
        "sop_class_uid": ids.sop_class_uid,
        "instance_number": values.integer(meta, T["InstanceNumber"]),
        "rows": _positive(values.integer(meta, T["Rows"])),
        "columns": _positive(values.integer(meta, T["Columns"])),
        "bits_allocated": _positive(values.integer(meta, T["BitsAllocated"])),
        "number_of_frames": table.number_of_frames,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "blob_key": blob.key,
        "size_bytes": blob.size,
        "sha256": blob.sha256,
        "version": blob.version,
        "frame_table": table.as_json(),
        "metadata": meta,
        "created_at": now,
        "updated_at": now,
    }
    pk = fastsql.insert(Instance, fields)
    instance = Instance(
        pk=pk,
        series_id=series.pk,
        study_id=study.pk,
        **{name: value for name, value in fields.items() if name not in ("series", "study")},
    )
    instance._state.adding, instance._state.db = False, fastsql.DB

    # Latest wins for series and study attributes; counts maintained here, not per query.
    series_changes = _changed(series, series_fields) if not series_created else {}
    if series.study_id != study.pk:  # a series re-sent under another study moves with it
        series_changes["study_id"] = study.pk
    batch.change(Series, series, series_changes, {"number_of_instances": 1, "size_bytes": blob.size})
    study_changes = _changed(study, study_fields) if not study_created else {}
    modalities = _add_to_set(study.modalities_in_study, series_fields["modality"])
    sop_classes = _add_to_set(study.sop_classes_in_study, ids.sop_class_uid)
    if modalities != study.modalities_in_study:
        study_changes["modalities_in_study"] = modalities
    if sop_classes != study.sop_classes_in_study:
        study_changes["sop_classes_in_study"] = sop_classes
    batch.change(
        Study,
        study,
        study_changes,
        {"number_of_instances": 1, "number_of_series": 1 if series_created else 0, "size_bytes": blob.size},
    )
    # A created study got its words from the post_save receiver below.
    if {"patient_name_norm", "referring_physician_name_norm"} & study_changes.keys():
        set_name_words(
            study.pk, study_fields["patient_name_norm"], study_fields["referring_physician_name_norm"]
        )
    if own_batch:
        batch.apply(now)

    instance_stored.send(sender=Instance, instance=instance, replaced=replaced is not None)
    return instance, replaced


WORD_MAX = 64  # PersonNameWord.word max_length


def name_words(normalized: str) -> list[str]:
    """Words of a normalized person name for fuzzy search: split on ``^``, ``=``, white space.

    Empty words are dropped, duplicates removed (first occurrence kept), each cut to 64.
    """
    words: dict[str, None] = {}
    for word in normalized.replace("^", " ").replace("=", " ").split():
        words.setdefault(word[:WORD_MAX], None)
    return list(words)


def name_word_rows(study_id: int, patient_name_norm: str, referring_name_norm: str) -> list[PersonNameWord]:
    """Unsaved PersonNameWord rows of one study (also used by ``seed_index``)."""
    return [
        PersonNameWord(study_id=study_id, field=PersonNameWord.PATIENT, word=word)
        for word in name_words(patient_name_norm)
    ] + [
        PersonNameWord(study_id=study_id, field=PersonNameWord.REFERRING, word=word)
        for word in name_words(referring_name_norm)
    ]


def set_name_words(
    study_id: int, patient_name_norm: str, referring_name_norm: str, *, created: bool = False
) -> None:
    """Replace one study's fuzzy-search words (its names changed or it was just created)."""
    if not created:
        PersonNameWord.objects.filter(study_id=study_id).delete()
    PersonNameWord.objects.bulk_create(name_word_rows(study_id, patient_name_norm, referring_name_norm))


@receiver(post_save, sender=Study, dispatch_uid="archive.indexing.study_name_words")
def _study_saved(sender, instance: Study, created: bool = False, raw: bool = False, **kwargs) -> None:
    """Any ``Study.save()`` (creation at ingest, admin, tests) brings its words up to date.

    ``QuerySet.update()`` sends no signal: ``index_instance`` calls ``set_name_words``
    itself when an update changes a name; ``bulk_create`` callers add the rows themselves.
    """
    if not raw:
        set_name_words(
            instance.pk, instance.patient_name_norm, instance.referring_physician_name_norm, created=created
        )


def _positive(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def detach_instance(instance: Instance) -> None:
    """Remove an instance's row and bring its series and study aggregates up to date.

    Empty series and studies are removed with it. Used by PUT upsert (the new version
    is indexed right after) and by deletion.
    """
    transaction_required()
    series_id, study_id = instance.series_id, instance.study_id
    instance.delete()
    series = Series.objects.select_for_update().filter(pk=series_id).first()
    if series is not None:
        if not series.instances.exists():
            series.delete()
        else:
            totals = series.instances.aggregate(n=Count("id"), size=Sum("size_bytes"))
            Series.objects.filter(pk=series_id).update(
                number_of_instances=totals["n"], size_bytes=totals["size"] or 0
            )
    recompute_study(study_id)


def recompute_study(study_id: int) -> None:
    """Recompute a study's counts and modality/SOP class lists from its rows (rare paths only)."""
    study = Study.objects.select_for_update().filter(pk=study_id).first()
    if study is None:
        return
    totals = Instance.objects.filter(study_id=study_id).aggregate(n=Count("id"), size=Sum("size_bytes"))
    if not totals["n"]:
        patient_id = study.patient_id
        study.delete()
        if not Study.objects.filter(patient_id=patient_id).exists():
            Patient.objects.filter(pk=patient_id).delete()
        return
    modalities = Series.objects.filter(study_id=study_id).values_list("modality", flat=True).distinct()
    sop_classes = (
        Instance.objects.filter(study_id=study_id).values_list("sop_class_uid", flat=True).distinct()
    )
    study.number_of_instances = totals["n"]
    study.size_bytes = totals["size"] or 0
    study.number_of_series = Series.objects.filter(study_id=study_id).count()
    study.modalities_in_study = "\\".join(sorted({m for m in modalities if m}))
    study.sop_classes_in_study = "\\".join(sorted(set(sop_classes)))
    Study.objects.filter(pk=study_id).update(
        number_of_instances=study.number_of_instances,
        size_bytes=study.size_bytes,
        number_of_series=study.number_of_series,
        modalities_in_study=study.modalities_in_study,
        sop_classes_in_study=study.sop_classes_in_study,
        search_json=studyresult.ready_text_of(study),
        search_json_at=study.updated_at,  # unchanged here
    )


def transaction_required() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("index changes must run inside transaction.atomic()")
