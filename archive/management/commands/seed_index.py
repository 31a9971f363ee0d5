"""Fill the index with synthetic studies for search benchmarks: ``manage.py seed_index --studies N``.

Rows go straight into the index tables with ``bulk_create`` in batches of 5,000 studies
(Patient, Study, Series, Instance, PersonNameWord), with the maintained counts and
``modalities_in_study`` set, so QIDO answers over them are correct. Names come from a
small list of given and family names (some accented), study dates are spread over ten
years, every second study starts a new patient.

**Seeded instances have no blobs**: their ``blob_key`` points nowhere. They are for
search (QIDO) benchmarks only — WADO retrieval of them fails, and ``sweep_orphans``
reports them as instances whose blob is missing. Never run this against a real archive.

Runs are additive: a second run adds N more studies after the existing ones (new UIDs
and patients). The QIDO benchmark seeds each scale's database in one run with the same seed,
so a smaller database holds exactly the first studies of a larger one.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from archive.indexing import name_word_rows
from archive.models import Instance, Patient, PersonNameWord, Series, Study
from archive.studyresult import ready_text_of
from archive.values import normalize_name

UID_ROOT = "1.2.826.0.1.3680043.10.1455.8."  # the project's test/benchmark UID root
BATCH = 5_000  # studies per transaction
FAMILY = (
    "Doe", "Smith", "Johnson", "Brown", "Jones", "Garcia", "Miller", "Davis", "Martinez", "Lopez",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Müller", "Schröder", "Weiß", "García", "Núñez", "Pérez", "Dubois", "Lefèvre", "Gonçalves", "Østergaard",
    "Kowalski", "Nowak", "Novák", "Dvořák", "Rossi", "Bianchi", "Ferrari", "Yamamoto", "Tanaka", "Kim",
    "O'Neil-Smith", "van der Berg", "De la Cruz", "Andersson", "Nielsen", "Hansen", "Virtanen",
    "Papadopoulos",
)  # fmt: skip
GIVEN = (
    "John", "Jane", "Joseph", "Mary", "James", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
    "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Thomas", "Jessica", "Charles", "Sarah",
    "José", "María", "Zoë", "Chloé", "André", "Jürgen", "Søren", "François", "Hélène", "Agnès",
    "Anna", "Peter", "Paul", "Mark", "Laura", "Emma", "Lukas", "Sofia", "Mateo", "Yuki",
)  # fmt: skip
DESCRIPTIONS = {
    "CT": ("CT CHEST W CONTRAST", "CT HEAD WO CONTRAST", "CT ABDOMEN PELVIS", "CTA CORONARY"),
    "MR": ("MRI BRAIN W WO CONTRAST", "MR KNEE LEFT", "MR LUMBAR SPINE", "MR PROSTATE"),
    "CR": ("XR CHEST 2 VIEWS", "XR HAND RIGHT", "XR PELVIS"),
    "US": ("US ABDOMEN COMPLETE", "US THYROID", "US OB 2ND TRIMESTER"),
    "MG": ("MAMMO SCREENING BILATERAL", "MAMMO DIAGNOSTIC LEFT"),
    "PT": ("PET CT WHOLE BODY",),
    "NM": ("NM BONE SCAN WHOLE BODY",),
}
MODALITY_WEIGHTS = {"CT": 30, "MR": 20, "CR": 25, "US": 12, "MG": 6, "PT": 4, "NM": 3}
SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "SR": "1.2.840.10008.5.1.4.1.1.88.22",
}
MODELS = ("Aquilion ONE", "SOMATOM Force", "MAGNETOM Vida", "Ingenia 3.0T", "DRX-Evolution", "LOGIQ E10")
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
FIRST_DATE = dt.date(2016, 1, 1)
DAYS = 3652  # ten years


def _pn(value: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": value}]} if value else {"vr": "PN"}


def _v(vr: str, value) -> dict:
    return {"vr": vr, "Value": [value]} if value not in (None, "") else {"vr": vr}


def _da(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _person(rng: random.Random) -> str:
    name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
    if rng.random() < 0.15:
        name += f"^{rng.choice(GIVEN)}"  # a middle name
    return name


class Command(BaseCommand):
    help = "Add N synthetic studies (no blobs!) to the index for search benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--studies", type=int, required=True, help="studies to add")
        parser.add_argument("--series-per-study", type=int, default=3)
        parser.add_argument("--instances-per-series", type=int, default=3)
        parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data)")

    def handle(self, *args, studies: int, series_per_study: int, instances_per_series: int, seed: int, **kw):
        verbosity = kw.get("verbosity", 1)
        started = time.monotonic()
        # Continue after the studies already seeded, so runs add up with distinct UIDs.
        first = Study.objects.filter(study_uid__startswith=f"{UID_ROOT}{seed}.").count() + 1
        done = 0
        while done < studies:
            count = min(BATCH, studies - done)
            with transaction.atomic():
                seed_batch(first + done, count, series_per_study, instances_per_series, seed)
            done += count
            if verbosity >= 2:
                self.stdout.write(f"  {done}/{studies} studies ({time.monotonic() - started:.1f} s)")
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"seeded {studies} studies ({studies * series_per_study} series, "
            f"{studies * series_per_study * instances_per_series} instances) in {elapsed:.1f} s"
        )


def seed_batch(first: int, count: int, series_per_study: int, instances_per_series: int, seed: int) -> None:
    """Insert studies number ``first`` … ``first + count - 1`` and everything below them."""
    rng = random.Random(f"{seed}:{first}")
    # Every second study starts a new patient; a patient's name depends only on its number.
    patient_numbers = sorted({n // 2 for n in range(first, first + count)})
    patient_rows = []
    for number in patient_numbers:
        prng = random.Random(f"{seed}:patient:{number}")
        name = _person(prng)
        birth = dt.date(1930, 1, 1) + dt.timedelta(days=prng.randrange(80 * 365))
        patient_rows.append(
            Patient(
                patient_id=f"SP{number:08d}",
                patient_name=name,
                patient_name_norm=normalize_name(name),
                patient_birth_date=birth,
                patient_sex=prng.choice("FM"),
            )
        )
    # A patient straddling two runs exists already: keep it.
    Patient.objects.bulk_create(patient_rows, ignore_conflicts=True)
    patients = {
        p.patient_id: p
        for p in Patient.objects.filter(
            patient_id__in=[row.patient_id for row in patient_rows], issuer_of_patient_id=""
        )
    }

    modalities = list(MODALITY_WEIGHTS)
    weights = list(MODALITY_WEIGHTS.values())
    study_rows: list[Study] = []
    plans: list[list[str]] = []  # series modalities per study
    for n in range(first, first + count):
        patient = patients[f"SP{n // 2:08d}"]
        modality = rng.choices(modalities, weights)[0]
        series_modalities = [modality] * series_per_study
        if series_per_study > 1 and rng.random() < 0.1:
            series_modalities[-1] = "SR"  # a report series
        plans.append(series_modalities)
        study_date = FIRST_DATE + dt.timedelta(days=rng.randrange(DAYS))
        study_time = dt.time(rng.randrange(7, 20), rng.randrange(60), rng.randrange(60))
        accession = f"A{seed:02d}{n:09d}"
        description = rng.choice(DESCRIPTIONS[modality])
        referring = _person(rng) if rng.random() < 0.9 else ""
        study_uid = f"{UID_ROOT}{seed}.{n}"
        instances = series_per_study * instances_per_series
        study_rows.append(
            Study(
                study_uid=study_uid,
                patient=patient,
                patient_name=patient.patient_name,
                patient_name_norm=patient.patient_name_norm,
                patient_birth_date=patient.patient_birth_date,
                patient_sex=patient.patient_sex,
                study_date=study_date,
                study_time=study_time,
                accession_number=accession,
                study_description=description,
                referring_physician_name=referring,
                referring_physician_name_norm=normalize_name(referring),
                study_id=str(n % 10**6),
                modalities_in_study="\\".join(sorted(set(series_modalities))),
                sop_classes_in_study="\\".join(sorted({SOP_CLASS[m] for m in series_modalities})),
                number_of_series=series_per_study,
                number_of_instances=instances,
                size_bytes=instances * 525_000,
                attributes={
                    "00080020": _v("DA", _da(study_date)),
                    "00080030": _v("TM", study_time.strftime("%H%M%S")),
                    "00080050": _v("SH", accession),
                    "00080090": _pn(referring),
                    "00081030": _v("LO", description),
                    "00100010": _pn(patient.patient_name),
                    "00100020": _v("LO", patient.patient_id),
                    "00100030": _v("DA", _da(patient.patient_birth_date)),
                    "00100040": _v("CS", patient.patient_sex),
                    "0020000D": _v("UI", study_uid),
                    "00200010": _v("SH", str(n % 10**6)),
                },
            )
        )
    for study in study_rows:  # bulk_create skips save(): the ready search result, as ingest writes it
        study.search_json, study.search_json_at = ready_text_of(study), study.updated_at
    Study.objects.bulk_create(study_rows, batch_size=1000)
    words: list[PersonNameWord] = []
    for study in study_rows:
        words += name_word_rows(study.pk, study.patient_name_norm, study.referring_physician_name_norm)
    PersonNameWord.objects.bulk_create(words, batch_size=5000)

    series_rows: list[Series] = []
    for study, series_modalities in zip(study_rows, plans, strict=True):
        for index, modality in enumerate(series_modalities, start=1):
            series_uid = f"{study.study_uid}.{index}"
            series_rows.append(
                Series(
                    series_uid=series_uid,
                    study=study,
                    modality=modality,
                    series_number=index,
                    series_description=f"{modality} series {index}",
                    series_date=study.study_date,
                    series_time=study.study_time,
                    manufacturer_model_name=MODELS[(study.pk + index) % len(MODELS)],
                    performed_procedure_step_start_date=study.study_date,
                    number_of_instances=instances_per_series,
                    size_bytes=instances_per_series * 525_000,
                    attributes={
                        "00080060": _v("CS", modality),
                        "00081090": _v("LO", MODELS[(study.pk + index) % len(MODELS)]),
                        "0008103E": _v("LO", f"{modality} series {index}"),
                        "0020000E": _v("UI", series_uid),
                        "00200011": _v("IS", index),
                        "00400244": _v("DA", _da(study.study_date)),
                    },
                )
            )
    Series.objects.bulk_create(series_rows, batch_size=2000)

    _insert_instances(series_rows, instances_per_series)


_INSTANCE_COLUMNS = (
    "instance_uid", "series_id", "study_id", "sop_class_uid", "instance_number", "rows", "columns",
    "bits_allocated", "number_of_frames", "transfer_syntax_uid", "blob_key", "size_bytes", "sha256",
    "version", "frame_table", "metadata", "created_at", "updated_at",
)  # fmt: skip


def _insert_instances(series_rows: list[Series], instances_per_series: int) -> None:
    """Instance rows: ``COPY`` on PostgreSQL (the bulk of the rows; ~5x bulk_create), else bulk_create."""
    now = timezone.now()
    rows = []
    for series in series_rows:
        sop_class = SOP_CLASS[series.modality]
        for number in range(1, instances_per_series + 1):
            instance_uid = f"{series.series_uid}.{number}"
            metadata = {
                "00080016": _v("UI", sop_class),
                "00080018": _v("UI", instance_uid),
                "00200013": _v("IS", number),
                "00280010": _v("US", 512),
                "00280011": _v("US", 512),
            }
            # blob_key points nowhere: seeded instances are for search only.
            rows.append(
                (instance_uid, series.pk, series.study_id, sop_class, number, 512, 512, 16, 1,
                 EXPLICIT_VR_LE, f"seed/no-blob/{instance_uid}", 525_000, "0" * 64, 1, {}, metadata, now, now)
            )  # fmt: skip
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            sql = f"COPY {Instance._meta.db_table} ({', '.join(_INSTANCE_COLUMNS)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row((*row[:14], json.dumps(row[14]), json.dumps(row[15]), *row[16:]))
        return
    Instance.objects.bulk_create(
        [Instance(**dict(zip(_INSTANCE_COLUMNS, row, strict=True))) for row in rows], batch_size=2000
    )
