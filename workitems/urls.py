"""UPS-RS routes, spliced into ``dicomweb/urls.py`` (before its catch-all) so they live
under ``/dicomweb/`` and appear in the generated capabilities document."""

from __future__ import annotations

from django.urls import path

from dicomweb.views.dispatch import by_method
from workitems import views

WORKITEM = "workitems/<str:workitem_uid>"

urlpatterns = [
    path(
        "workitems",
        by_method(get=views.WorkitemsView.as_view(), post=views.WorkitemsView.as_view()),
        name="workitems",
    ),
    path(
        WORKITEM,
        by_method(get=views.WorkitemView.as_view(), post=views.WorkitemView.as_view()),
        name="workitem",
    ),
    path(f"{WORKITEM}/state", by_method(put=views.StateView.as_view()), name="workitem-state"),
    path(
        f"{WORKITEM}/cancelrequest",
        by_method(post=views.CancelRequestView.as_view()),
        name="workitem-cancelrequest",
    ),
    path(
        f"{WORKITEM}/subscribers/<str:ae_title>",
        by_method(post=views.SubscriptionView.as_view(), delete=views.SubscriptionView.as_view()),
        name="workitem-subscription",
    ),
    path(
        f"{WORKITEM}/subscribers/<str:ae_title>/suspend",
        by_method(post=views.SuspendView.as_view()),
        name="workitem-subscription-suspend",
    ),
    path("subscribers/<str:ae_title>", by_method(get=views.EventChannelView.as_view()), name="event-channel"),
]
