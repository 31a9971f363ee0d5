"""The index: Patient → Study → Series → Instance, plus in-flight store reservations.

Search must stay fast as the archive grows, so every attribute the conformance
statement makes searchable is a real, indexed column (dates as ``DateField``, person
names also in a normalized upper-case, accent-folded column), and the counts and
modality lists QIDO returns are maintained at ingest instead of computed per query.
What a search or metadata response *returns* is kept as DICOM JSON (``attributes`` /
``metadata``), so responses are built from the index without reading blobs.

Study- and series-level attributes follow "latest wins": the most recently stored
instance's values replace the previous ones (conformance statement, search notes).
"""

from __future__ import annotations

from django.db import models
from django.db.models import F
from django.db.models.functions import Upper
from django.utils import timezone


class Patient(models.Model):
    """Groups studies by (PatientID, IssuerOfPatientID); demographics are latest-wins.

    PatientID may be empty (the conformance statement allows it), so all studies with
    an empty PatientID and no issuer share one Patient row; studies keep their own copy
    of the patient attributes, which is what QIDO returns.
    """

    patient_id = models.CharField(max_length=64, blank=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=324, blank=True)
    patient_name_norm = models.CharField(max_length=324, blank=True)
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer_of_patient_id"], name="archive_patient_identity"
            ),
        ]
        indexes = [
            # Admin search by name.
            models.Index(fields=["patient_name_norm"], name="archive_patient_name_norm"),
            # QIDO PatientID=… (case-insensitive exact: ``UPPER(patient_id) = UPPER(%s)``).
            models.Index(Upper("patient_id"), name="archive_patient_id_upper"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_name or '(no name)'} [{self.patient_id or 'no ID'}]"


class Study(models.Model):
    study_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")

    # Patient attributes as this study carries them (QIDO study level).
    patient_name = models.CharField(max_length=324, blank=True)
    patient_name_norm = models.CharField(max_length=324, blank=True, db_index=True)
    patient_birth_date = models.DateField(null=True, blank=True, db_index=True)
    patient_sex = models.CharField(max_length=16, blank=True)

    study_date = models.DateField(null=True, blank=True)  # indexed: archive_study_date_recent
    study_time = models.TimeField(null=True, blank=True)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    study_description = models.CharField(max_length=64, blank=True, db_index=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    referring_physician_name_norm = models.CharField(max_length=324, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)

    # Maintained at ingest (QIDO computed attributes).
    modalities_in_study = models.CharField(max_length=512, blank=True)  # backslash-separated, sorted
    sop_classes_in_study = models.TextField(blank=True)  # backslash-separated, sorted
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)

    # Study-level attributes as DICOM JSON (PS3.18 Annex F), for responses.
    attributes = models.JSONField(default=dict)
    # The study's default QIDO-RS result, ready to send (``archive.studyresult``): written
    # with every change of the attributes, counts or modalities (``archive.indexing``,
    # ``save()``). Empty only for rows written around those paths; searches then build it.
    search_json = models.TextField(blank=True, default="")
    search_json_at = models.DateTimeField(null=True, blank=True)  # the updated_at it was made at
    created_at = models.DateTimeField(auto_now_add=True)
    # Newest-first paging (archive_study_recent). Set by every writer: ingest's UPDATE,
    # ``save()`` (not ``auto_now``, whose value comes too late for ``search_json``'s stamp).
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "studies"
        indexes = [
            # QIDO /studies newest first (ORDER BY updated_at DESC, id DESC), e.g. paging
            # with no filter (limit=100&offset=1000): read in index order, no sort. The
            # name is included (PostgreSQL) so PatientName=DOE* walks it without visiting
            # the rows it skips (migration 0009: 34 instead of 1,125 buffers at 200k).
            models.Index(
                fields=["-updated_at", "-id"], include=["patient_name_norm"], name="archive_study_recent"
            ),
            # QIDO StudyDate=20190301-20190331: the range's (updated_at, id) come from the
            # index alone (PostgreSQL index-only scan), sorted, and only the page's rows are
            # read. Measured at 200k studies (1,600 in the month): 7.6 → 3.5 ms, where
            # walking archive_study_recent newest-first had to visit rows until 100 matched.
            models.Index(
                fields=["study_date"], include=["updated_at", "id"], name="archive_study_date_recent"
            ),
            # QIDO PatientName=DOE* (``patient_name_norm LIKE 'DOE%'``) needs no index of its
            # own: ``db_index=True`` on a CharField already gives PostgreSQL a
            # ``varchar_pattern_ops`` twin (``…_like``), and elsewhere a plain one. 0003's
            # ``archive_study_pn_like`` duplicated it; 0010 drops it (see there).
        ]
        # The permissions the role groups grant (archive.apps.ROLE_PERMISSIONS).
        permissions = [
            ("read_dicom", "Can search and retrieve DICOM (QIDO-RS, WADO-RS)"),
            ("write_dicom", "Can store DICOM (STOW-RS)"),
            ("delete_dicom", "Can delete studies, series and instances"),
            ("manage_worklist", "Can manage UPS-RS workitems"),
        ]

    def __str__(self) -> str:
        return f"{self.study_date or ''} {self.study_description or self.study_uid}".strip()

    def save(self, *args, **kwargs) -> None:
        """Any ORM save (creation at ingest, the admin, tests) keeps ``search_json`` current."""
        from archive.studyresult import ready_text_of

        self.updated_at = self.search_json_at = timezone.now()
        self.search_json = ready_text_of(self)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "updated_at", "search_json", "search_json_at"}
        super().save(*args, **kwargs)


class Series(models.Model):
    series_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")

    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    series_date = models.DateField(null=True, blank=True)
    series_time = models.TimeField(null=True, blank=True)
    manufacturer_model_name = models.CharField(max_length=64, blank=True, db_index=True)
    performed_procedure_step_start_date = models.DateField(null=True, blank=True, db_index=True)
    performed_procedure_step_start_time = models.TimeField(null=True, blank=True)
    body_part_examined = models.CharField(max_length=16, blank=True)
    laterality = models.CharField(max_length=16, blank=True)

    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)

    attributes = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "series"
        indexes = [
            # Series of a study, newest first (QIDO study's series, admin).
            models.Index(fields=["study", "-updated_at"], name="archive_series_study_recent"),
            # QIDO /series?Modality=MR, newest first: the query is case-insensitive
            # (``UPPER(modality) = 'MR'``), so the index is on UPPER(modality), then index order.
            models.Index(
                Upper("modality"),
                F("updated_at").desc(),
                F("id").desc(),
                name="archive_series_modality_recent",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.modality} {self.series_number or ''} {self.series_description}".strip() or self.series_uid
        )


class Instance(models.Model):
    instance_uid = models.CharField(max_length=64, unique=True)  # uniqueness is the DB's job (45070)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    # Denormalized so a study's instances (WADO study retrieve, study metadata) are one indexed query.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instances")

    sop_class_uid = models.CharField(max_length=64, db_index=True)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    bits_allocated = models.PositiveSmallIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=0)  # 0 = no pixel data
    transfer_syntax_uid = models.CharField(max_length=64)

    blob_key = models.CharField(max_length=512, unique=True)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Increases with every stored version (PUT upsert replaces the blob under a new key).
    version = models.BigIntegerField()
    # The version stored before the first attribute correction (archive.corrections), kept
    # and served to WADO-RS requests with ``msdicom-request-original: true``; "" = none.
    original_blob_key = models.CharField(max_length=512, blank=True, default="", db_default="")
    original_size_bytes = models.BigIntegerField(null=True, blank=True)

    # Where the pixel data and each frame sit in the blob, so a frame is one ranged read.
    # See archive.reader.FrameTable for the shape.
    frame_table = models.JSONField(default=dict)
    # The instance as DICOM JSON; bulk data as relative BulkDataURI placeholders.
    metadata = models.JSONField(default=dict)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Instances of a series in instance-number order (WADO series retrieve, viewer).
            models.Index(fields=["series", "instance_number"], name="archive_instance_series_order"),
            models.Index(fields=["study", "series"], name="archive_instance_study_series"),
        ]

    def __str__(self) -> str:
        return self.instance_uid


class PersonNameWord(models.Model):
    """One word of a study's normalized patient / referring physician name, for fuzzy search.

    QIDO ``fuzzymatching=true`` matches when every query word is a prefix of some name
    word; with one row per word that is an indexed prefix scan per query word instead of
    a ``LIKE '%…'`` scan of every study. Maintained by ``archive.indexing`` whenever a
    study's ``*_name_norm`` changes (words: the normalized name split on ``^``, ``=`` and
    white space, deduplicated).
    """

    PATIENT = "P"
    REFERRING = "R"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="name_words")
    field = models.CharField(max_length=1)  # "P" PatientName, "R" ReferringPhysicianName
    word = models.CharField(max_length=64)

    class Meta:
        indexes = [
            # QIDO PatientName=jo do&fuzzymatching=true: ``field = 'P' AND word LIKE 'JO%'``
            # per query word (pattern opclass on PostgreSQL, see Study; study_id included so
            # the scan never visits the table).
            models.Index(
                fields=["field", "word"],
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops"],
                include=["study"],
                name="archive_pnword_prefix",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field} {self.word}"


class StudyNameKey(models.Model):
    """Studies whose name has two given two-letter word starts, newest first (PostgreSQL).

    A fuzzy query of two-letter words (``jo do``, ``ma``) matches a name exactly when the
    name has a word starting with each. Its matches come from the GIN index unordered,
    so showing the newest 100 meant reading every match (at 200k studies "ma an" has
    1,724; the rows are scattered, 18.9 ms when they are not cached). Here every pair
    of a name's two-letter word starts (a word with itself included; the two in
    code-point order, space-joined: ``DO JO``, ``MA MA``) is one row, ordered under
    its key by the second of the study's ``updated_at``: the newest matches are read
    first, and a page stops after its last second (measured: 123 rows for "ma an",
    3.6 ms uncached).

    Kept by PostgreSQL triggers on ``archive_study`` (migration 0013), so every writer
    keeps it true — ingest, ``seed_index``, a hand-made SQL fix — and a study's rows
    move only when its name changes or its ``updated_at`` reaches a new second, not on
    every store batch. Empty elsewhere (SQLite uses ``PersonNameWord``).
    """

    PATIENT = "P"
    REFERRING = "R"

    pk = models.CompositePrimaryKey("field", "key", "second", "study")
    field = models.CharField(max_length=1)  # "P" PatientName, "R" ReferringPhysicianName
    key = models.CharField(max_length=5)  # "DO JO": two two-letter starts, code-point order
    second = models.BigIntegerField()  # floor of the study's updated_at in Unix seconds
    study = models.ForeignKey(
        Study, on_delete=models.DO_NOTHING, db_constraint=False, related_name="name_keys"
    )  # rows go with the study by trigger

    def __str__(self) -> str:
        return f"{self.field} {self.key} {self.second} {self.study_id}"


class ChangeFeedEntry(models.Model):
    """One change to one instance, in commit order: the MS DICOM server's change feed (v2).

    Written in the same transaction as the index change it records (``archive.changefeed``),
    so the feed never mentions an instance the index does not agree with. ``state`` is
    rewritten on older entries of an instance when a newer change supersedes them.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"  # PUT replaced an existing instance
        DELETE = "delete"

    class State(models.TextChoices):
        CURRENT = "current"
        REPLACED = "replaced"
        DELETED = "deleted"

    sequence = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    state = models.CharField(max_length=8, choices=State.choices)
    study_uid = models.CharField(max_length=64)
    series_uid = models.CharField(max_length=64)
    instance_uid = models.CharField(max_length=64, db_index=True)
    version = models.BigIntegerField(null=True, blank=True)  # Instance.version the entry is about

    class Meta:
        verbose_name_plural = "change feed entries"

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.instance_uid} ({self.state})"


class AuditEvent(models.Model):
    """Who did what to which data, when and from where: the audit trail.

    Written by DICOMweb requests (store, retrieve, search, delete) and by the admin (views,
    changes, deletes, uploads) through ``archive.audit.record``. Append-only: the admin
    shows it read-only, and nothing in Archway updates or deletes rows.
    """

    class Action(models.TextChoices):
        STORE = "store"
        RETRIEVE = "retrieve"
        SEARCH = "search"
        DELETE = "delete"
        VIEW = "view"
        CHANGE = "change"
        UPLOAD = "upload"
        DOWNLOAD = "download"

    timestamp = models.DateTimeField(auto_now_add=True)
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    source = models.CharField(max_length=16)  # "dicomweb" | "admin"
    remote_addr = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=1024, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # HTTP status of the request
    study_uid = models.CharField(max_length=64, blank=True)
    series_uid = models.CharField(max_length=64, blank=True)
    instance_uid = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            # The admin's audit list and the dashboard's recent activity, newest first.
            models.Index(fields=["-timestamp", "-id"], name="archive_audit_recent"),
            # "Who touched this study?"
            models.Index(fields=["study_uid", "-timestamp"], name="archive_audit_study"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username or 'anonymous'} {self.action} {self.path}"
