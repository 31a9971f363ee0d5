"""Announce an SCP Status Change (PS3.4 CC.2.4, event type 4) to every subscribed AE.

Run it before planned downtime (``going-down``) and after the restart (``restarted``),
e.g. from the service manager's stop/start hooks; subscribers then know that events may
have been missed in between. Also purges finished workitems past their retention.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from workitems import events
from workitems.models import Subscription
from workitems.services import purge_finished

STATUSES = {"going-down": "GOING DOWN", "restarted": "RESTARTED"}


class Command(BaseCommand):
    help = "Send an SCP Status Change event report (going-down | restarted) to every subscribed AE."

    def add_arguments(self, parser) -> None:
        parser.add_argument("status", choices=sorted(STATUSES))

    def handle(self, *args, status: str, **options) -> None:
        ae_titles = sorted(set(Subscription.objects.values_list("ae_title", flat=True)))
        events.send_now(ae_titles, [events.scp_status_change(STATUSES[status])])
        purged = purge_finished()
        self.stdout.write(
            f"SCP Status Change {STATUSES[status]} sent to {len(ae_titles)} AE(s); "
            f"{purged} finished workitem(s) purged"
        )
