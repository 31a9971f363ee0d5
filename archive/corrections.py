"""Attribute corrections: fix a wrong patient name, ID, accession number … in stored data.

A correction rewrites every stored instance it touches, so what WADO-RS returns, what
QIDO finds and what the metadata says all agree afterwards. Each instance is re-stored
through ``archive.ingest.store`` (the STOW path: validation, new blob version, index,
change feed ``update`` entry) with ``keep_original=True``: the version from before the
*first* correction stays in blob storage and is served to WADO-RS requests carrying
``msdicom-request-original: true``, as the MS DICOM server's bulk update does.

Instances are corrected one at a time, each in its own transaction (a study of 2,000
instances must not hold a lock for minutes); a failure stops the run and says how many
instances were already corrected — running the same correction again finishes the job,
because instances that already carry the new values are skipped.

References: PS3.3 C.7.1.1 (Patient Module), C.7.2.1 (General Study Module); the
conformance statement's "Update" (bulk update) and ``msdicom-request-original``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from archive import ingest
from archive.blobfile import local_copy
from archive.models import Instance, Patient, Study

logger = logging.getLogger(__name__)

# keyword → VR: the patient- and study-level attributes staff may correct.
CORRECTABLE = {
    "PatientName": "PN",
    "PatientID": "LO",
    "PatientBirthDate": "DA",
    "PatientSex": "CS",
    "AccessionNumber": "SH",
    "StudyDescription": "LO",
    "ReferringPhysicianName": "PN",
}
PATIENT_LEVEL = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


class CorrectionError(Exception):
    """A correction was refused (bad value) or stopped part-way (storage, index)."""


@dataclass(frozen=True, slots=True)
class Corrected:
    instances: int  # instances rewritten
    unchanged: int  # instances that already had the new values
    study_uids: tuple[str, ...]


def validate(changes: dict[str, str]) -> dict[str, str]:
    """The changes with values checked against their VR (PS3.5 6.2); ValueError names the problem."""
    clean: dict[str, str] = {}
    for keyword, value in changes.items():
        vr = CORRECTABLE.get(keyword)
        if vr is None:
            raise ValueError(f"{keyword} cannot be corrected here")
        value = (value or "").strip()
        if keyword == "PatientSex" and value not in ("", "M", "F", "O"):
            raise ValueError("PatientSex must be M, F, O or empty")
        try:
            validate_value(vr, value, pydicom.config.RAISE)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{keyword}: {exc}") from exc
        if "\\" in value:
            raise ValueError(f"{keyword}: a backslash would make it several values")
        clean[keyword] = value
    return clean


def _needs(ds: Dataset, changes: dict[str, str]) -> bool:
    return any(str(ds.get(keyword, "") or "") != value for keyword, value in changes.items())


def _rewrite(instance: Instance, changes: dict[str, str]) -> bool:
    """Re-store one instance with the new values; False when it already had them."""
    with local_copy(instance.blob_key) as source:
        # Large values stay in the blob (deferred) and are copied on write: bounded memory.
        ds = pydicom.dcmread(source, defer_size="256 KB")
        if not _needs(ds, changes):
            return False
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        with tempfile.TemporaryFile() as output:
            ds.save_as(output, enforce_file_format=True)
            output.seek(0)
            outcome = ingest.store(output, replace=True, keep_original=True)
    if not outcome.stored:
        raise CorrectionError(
            f"Instance {instance.instance_uid} could not be rewritten: {outcome.failure_message}"
        )
    return True


def correct_studies(study_uids: list[str], changes: dict[str, str]) -> Corrected:
    """Apply ``changes`` (keyword → new value) to every instance of the studies."""
    changes = validate(changes)
    if not changes:
        return Corrected(0, 0, tuple(study_uids))
    done = unchanged = 0
    old_patients = set(Study.objects.filter(study_uid__in=study_uids).values_list("patient_id", flat=True))
    for study_uid in study_uids:
        last_pk = 0
        while True:
            # Primary-key batches: never the whole study's rows in memory at once.
            batch = list(
                Instance.objects.filter(study__study_uid=study_uid, pk__gt=last_pk)
                .order_by("pk")
                .only("pk", "instance_uid", "blob_key")[:200]
            )
            if not batch:
                break
            last_pk = batch[-1].pk
            for instance in batch:
                try:
                    rewritten = _rewrite(instance, changes)
                except CorrectionError:
                    raise
                except Exception as exc:
                    logger.exception("correction failed on %s", instance.instance_uid)
                    raise CorrectionError(
                        f"Stopped after {done} instance(s): {instance.instance_uid} failed ({exc}). "
                        "Run the same correction again to finish."
                    ) from exc
                done += rewritten
                unchanged += not rewritten
    # A PatientID change moves the studies to another Patient row; drop emptied ones.
    Patient.objects.filter(pk__in=old_patients, studies__isnull=True).delete()
    logger.info("corrected %d instance(s) of %d study(ies): %s", done, len(study_uids), sorted(changes))
    return Corrected(done, unchanged, tuple(study_uids))


def correct_patient(patient: Patient, changes: dict[str, str]) -> Corrected:
    """Patient-level changes apply to every study of the patient."""
    study_uids = list(patient.studies.order_by("pk").values_list("study_uid", flat=True))
    return correct_studies(study_uids, changes)
