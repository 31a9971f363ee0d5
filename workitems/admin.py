"""The worklist in the admin: workitems listed and shown read-only, acted on through UPS.

Nothing here edits a workitem row: there is no add, change or delete form. The only way
to change a workitem is an action button (Claim, Complete, Cancel, Request cancellation),
and each is a UPS transaction in ``workitems.services`` (see ``workitems.adminactions``),
so the state table, the requirement tables and the event reports to subscribers apply
exactly as for a UPS-RS client.

Permissions: the ``worklist`` role (or a superuser), for the list as well as the
actions. The UPS-RS API gives workitems — patient demographics and schedules — only to
that role, even for GET, so the admin does not show them to ``read`` alone either.

The list is one page-sized query over ``Workitem`` (no related rows: patient, station and
label come from the row's own data set), newest first on the ``workitem_newest`` index.
The search box uses the worklist search's patient-name matching
(``workitems.query.match_q``: every word starts a word of the name, case and accents
ignored), or an exact patient ID or workitem UID.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from archive import audit
from archive.admin import RoleAdmin, has_role
from workitems import adminactions as wa
from workitems import query as wq
from workitems.models import Subscription, Workitem

LEVELS = {"success": messages.SUCCESS, "warning": messages.WARNING, "error": messages.ERROR}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason for cancellation",
        required=False,
        max_length=1024,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Optional; sent as ReasonForCancellation (0074,1238).",
    )


@admin.register(Workitem)
class WorkitemAdmin(RoleAdmin):
    list_display = (
        "state_badge",
        "scheduled",
        "patient",
        "patient_identifier",
        "station",
        "label",
        "updated_at",
    )
    list_display_links = ("scheduled", "label")
    list_filter = ("state",)
    ordering = ("-updated_at", "-id")
    sortable_by = ("state_badge", "scheduled", "patient", "patient_identifier", "updated_at")
    search_fields = ("workitem_uid",)  # replaced by get_search_results
    search_help_text = (
        "Patient name (words in any order, case and accents ignored), exact patient ID or workitem UID."
    )
    actions = None  # no bulk actions: each change is one UPS transaction on one workitem
    change_form_template = "admin/workitems/workitem/change_form.html"
    readonly_fields = (
        "workitem_uid",
        "state_badge",
        "scheduled",
        "patient",
        "patient_identifier",
        "station",
        "label",
        "performer",
        "subscribers",
        "created_at",
        "updated_at",
        "finished_at",
    )
    fields = readonly_fields  # never transaction_uid: it is the performer's lock

    # --- permissions: the worklist role, and no generic editing ---------------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role(request, "worklist")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request, "worklist")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # changes are UPS transactions (the action buttons), not form saves

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # finished workitems go by retention (services.purge_finished)

    def audit_uids(self, obj: Workitem) -> dict[str, str]:
        # A workitem UID is a SOP Instance UID (of the UPS Push SOP class).
        return {"instance_uid": obj.workitem_uid, "study_uid": obj.study_uid}

    # --- list ----------------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(patient_id__iexact=term) | Q(workitem_uid=term)
        with contextlib.suppress(wq.QueryError):  # e.g. only wildcards: not a name to match
            condition |= wq.match_q(wq.SEARCHABLE["PatientName"], term, fuzzy=True)
        return queryset.filter(condition), False

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Workitem) -> str:
        return format_html(
            '<span class="aw-state aw-state-{}">{}</span>', obj.state.lower().replace(" ", "-"), obj.state
        )

    @admin.display(description="scheduled start", ordering="scheduled_start")
    def scheduled(self, obj: Workitem) -> str:
        return wa.readable_datetime(obj.scheduled_start) or "-"

    @admin.display(description="patient", ordering="patient_name_norm")
    def patient(self, obj: Workitem) -> str:
        return wa.person(wa.first_value(obj.dataset, "00100010")) or "(no name)"

    @admin.display(description="patient ID", ordering="patient_id")
    def patient_identifier(self, obj: Workitem) -> str:
        return obj.patient_id

    @admin.display(description="station")
    def station(self, obj: Workitem) -> str:
        return wa.code_text(obj.dataset, "00404025") or "-"  # ScheduledStationNameCodeSequence

    @admin.display(description="procedure step")
    def label(self, obj: Workitem) -> str:
        return str(wa.first_value(obj.dataset, "00741204") or "-")  # ProcedureStepLabel

    # --- detail --------------------------------------------------------------------------------

    @admin.display(description="performer")
    def performer(self, obj: Workitem) -> str:
        if wa.admin_owns(obj):
            return "the admin (claimed here; its Transaction UID stays on the server)"
        if obj.state == Workitem.IN_PROGRESS:
            return "another performer (claimed through UPS-RS)"
        return "-"

    @admin.display(description="subscribers")
    def subscribers(self, obj: Workitem) -> str:
        rows = Subscription.objects.filter(workitem=obj).order_by("ae_title")
        titles = rows.values_list("ae_title", flat=True)
        return ", ".join(titles) or "none"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        workitem = self.get_object(request, object_id)
        if workitem is not None:
            from workitems.services import public_dataset

            extra_context["workitem_actions"] = [
                {
                    "action": action,
                    "url": reverse("admin:workitems_workitem_action", args=[workitem.pk, action.name]),
                }
                for action in wa.available(workitem)
            ]
            extra_context["dataset_rows"] = [
                {"tag": tag, "keyword": keyword, "vr": vr, "value": value, "indent": depth * 1.5}
                for tag, keyword, vr, value, depth in wa.dataset_rows(public_dataset(workitem))
            ]
            extra_context["audit_url"] = (
                reverse("admin:archive_auditevent_changelist") + f"?q={workitem.workitem_uid}"
            )
        return super().change_view(request, object_id, form_url, extra_context)

    # --- actions -------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/action/<str:name>/", view(self.action_view), name="workitems_workitem_action"),
            *super().get_urls(),
        ]

    def action_view(self, request: HttpRequest, pk: int, name: str) -> HttpResponse:
        """One action: GET (or a POST without ``confirmed``) shows the confirmation page of a
        final action; a confirmed POST runs it, audits it and reports it as a message."""
        if not has_role(request, "worklist"):
            raise PermissionDenied("Your account lacks the 'worklist' role.")
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        action = wa.ACTIONS.get(name)
        workitem = get_object_or_404(Workitem, pk=pk)
        change_url = reverse("admin:workitems_workitem_change", args=[pk])
        if action is None:
            raise Http404(f"Unknown workitem action {name!r}.")
        form = ReasonForm(request.POST if request.method == "POST" else None)
        confirmed = request.method == "POST" and (
            not action.confirm or request.POST.get("confirmed") == "yes"
        )
        if request.method == "GET" and not action.confirm:
            return HttpResponseRedirect(change_url)
        if not confirmed or (action.reason and not form.is_valid()):
            return self._confirmation(request, workitem, action, form, change_url)
        before = workitem.state
        reason = form.cleaned_data.get("reason", "").strip() if action.reason else ""
        contact = request.user.get_full_name() or request.user.get_username()
        result = wa.perform(name, workitem, reason=reason, contact=contact)
        after = Workitem.objects.filter(pk=pk).values_list("state", flat=True).first() or "(purged)"
        outcome = f"{before} → {after}" if result.level != "error" else f"failed: {result.message}"
        audit.record(
            audit.Action.CHANGE,
            source="admin",
            request=request,
            status=result.http,
            **self.audit_uids(workitem),
            detail=f"{name} workitem {workitem.workitem_uid}: {outcome} (DICOM status 0x{result.status:04X})",
        )
        messages.add_message(request, LEVELS[result.level], result.message)
        if after == "(purged)":  # finished and past retention: nothing left to show
            return HttpResponseRedirect(reverse("admin:workitems_workitem_changelist"))
        return HttpResponseRedirect(change_url)

    def _confirmation(
        self, request: HttpRequest, workitem: Workitem, action: wa.Action, form: ReasonForm, change_url: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.label}: are you sure?",
            "opts": self.model._meta,
            "workitem": workitem,
            "action": action,
            "form": form,
            "change_url": change_url,
            "summary": {
                "state": workitem.state,
                "scheduled": self.scheduled(workitem),
                "patient": f"{self.patient(workitem)} ({workitem.patient_id or 'no ID'})",
                "label": self.label(workitem),
                "station": self.station(workitem),
            },
        }
        return TemplateResponse(request, "admin/workitems/workitem/confirm_action.html", context)
