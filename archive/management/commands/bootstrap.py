"""``manage.py bootstrap``: give a fresh installation its first administrator and API token.

``make run`` calls this after ``migrate`` so that a new checkout is usable at once
without an interactive ``createsuperuser``: the first run creates the superuser
``admin`` with a random password, puts it in every role group, creates its API token
and prints the credentials exactly once (they are never stored in plain text, so they
cannot be shown again). Every later run sees that a superuser exists and only says so,
which makes the command safe to run on every start.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from archive.apps import ROLE_PERMISSIONS

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the first superuser ('admin', random password, every role, an API token) "
        "if there is no superuser yet, and print its credentials once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        existing = list(
            User.objects.filter(is_superuser=True)
            .order_by("pk")
            .values_list(User.USERNAME_FIELD, flat=True)[:3]
        )
        if existing:
            names = ", ".join(existing)
            self.stdout.write(
                f"bootstrap: a superuser already exists ({names}); nothing to do. "
                "Use `manage.py changepassword` or `manage.py issue_token` if you need credentials."
            )
            return

        with transaction.atomic():
            if User.objects.filter(**{User.USERNAME_FIELD: ADMIN_USERNAME}).exists():
                raise CommandError(
                    f"bootstrap: a user named {ADMIN_USERNAME!r} exists but is not a superuser; "
                    "create a superuser with `manage.py createsuperuser` instead"
                )
            groups = list(Group.objects.filter(name__in=ROLE_PERMISSIONS))
            missing = sorted(set(ROLE_PERMISSIONS) - {group.name for group in groups})
            if missing:
                raise CommandError(
                    f"bootstrap: role groups {', '.join(missing)} do not exist; run `manage.py migrate` first"
                )
            password = secrets.token_urlsafe(16)
            user = User.objects.create_superuser(**{User.USERNAME_FIELD: ADMIN_USERNAME}, password=password)
            user.groups.add(*groups)
            token = Token.objects.create(user=user)

        port = os.environ.get("PORT", "").strip() or "8000"
        base = f"http://127.0.0.1:{port}"
        rule = "=" * 78
        lines = [
            rule,
            "Archway: created the administrator account. These credentials are shown ONCE;",
            "the password cannot be displayed again (reset it with `manage.py changepassword admin`).",
            "",
            f"  Admin URL:  {base}/admin/",
            f"  Username:   {ADMIN_USERNAME}",
            f"  Password:   {password}",
            f"  API token:  {token.key}",
            "",
            "  Try it (store one instance):",
            f'  curl -H "Authorization: Bearer {token.key}" -H "Content-Type: application/dicom" '
            f"--data-binary @image.dcm {base}/dicomweb/studies",
            rule,
        ]
        self.stdout.write("\n".join(lines))
