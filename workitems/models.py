"""Worklist index: workitems (UPS instances) and subscriptions (PS3.4 Annex CC).

A workitem keeps its whole data set as DICOM JSON (what retrieve returns, minus the
Transaction UID) plus one indexed column per searchable attribute, so a search is one
ORM query over indexed columns, never a scan of JSON. Attributes inside sequences
(ReferencedRequestSequence.AccessionNumber, the station code sequences) can have several
items, so they live in ``WorkitemValue`` rows: one per (attribute path, value), which
makes "any item matches" an indexed EXISTS.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Workitem(models.Model):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"
    STATES = [(s, s) for s in (SCHEDULED, IN_PROGRESS, CANCELED, COMPLETED)]

    workitem_uid = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=STATES, default=SCHEDULED, db_index=True)
    # The performer's lock (PS3.4 CC.1.1): known only to the owner, never returned.
    transaction_uid = models.CharField(max_length=64, blank=True, default="")
    dataset = models.JSONField(default=dict)
    # searchable columns (conformance statement "Searchable Attributes")
    patient_name_norm = models.CharField(max_length=324, blank=True, default="", db_index=True)
    patient_name_words = models.CharField(max_length=400, blank=True, default="")  # " W1 W2 " fuzzy
    patient_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # ScheduledProcedureStepStartDateTime as fixed-width "YYYYMMDDHHMMSS.ffffff": compares as text
    scheduled_start = models.CharField(max_length=21, blank=True, default="", db_index=True)
    study_uid = models.CharField(max_length=64, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # reached COMPLETED or CANCELED

    class Meta:
        indexes = [models.Index(fields=["-updated_at", "-id"], name="workitem_newest")]

    def __str__(self) -> str:
        return f"{self.workitem_uid} ({self.state})"

    @property
    def final(self) -> bool:
        return self.state in (self.COMPLETED, self.CANCELED)


class WorkitemValue(models.Model):
    """One value of a searchable attribute inside a sequence item, e.g.
    ``("ReferencedRequestSequence.AccessionNumber", "A123")``."""

    workitem = models.ForeignKey(Workitem, on_delete=models.CASCADE, related_name="values")
    attribute = models.CharField(max_length=80)
    value = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["attribute", "value"], name="workitem_value_lookup")]


class Subscription(models.Model):
    """An AE's subscription: to one workitem, to the global worklist, or a filtered global one.

    Global subscriptions are expanded into per-workitem rows (for every existing workitem
    when made, and for each new workitem while not suspended), so delivering an event
    only ever reads the per-workitem rows of the workitem concerned.
    """

    WORKITEM = "workitem"
    GLOBAL = "global"
    FILTERED = "filtered"
    SCOPES = [(s, s) for s in (WORKITEM, GLOBAL, FILTERED)]

    ae_title = models.CharField(max_length=16)
    scope = models.CharField(max_length=8, choices=SCOPES, default=WORKITEM)
    workitem = models.ForeignKey(
        Workitem, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    query = models.JSONField(default=dict, blank=True)  # filtered global: the match keys
    deletion_lock = models.BooleanField(default=False)
    suspended = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ae_title", "workitem"],
                condition=Q(workitem__isnull=False),
                name="subscription_one_per_workitem",
            ),
            models.UniqueConstraint(
                fields=["ae_title", "scope"],
                condition=Q(workitem__isnull=True),
                name="subscription_one_global_per_scope",
            ),
        ]

    def __str__(self) -> str:
        target = self.workitem.workitem_uid if self.workitem_id else self.scope
        return f"{self.ae_title} → {target}"
