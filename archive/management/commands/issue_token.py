"""``manage.py issue_token USERNAME``: print (and if needed create) a user's API token.

Integrators and scripts authenticate with ``Authorization: Bearer <key>``; this gives an
operator a way to hand out such keys without the admin UI. Only the key goes to stdout,
so ``TOKEN=$(python manage.py issue_token alice)`` works; everything else (what was
created, which groups were added) goes to stderr.

* ``--create-user`` creates a missing user with an unusable password (token-only).
* ``--groups read,write`` adds the user to those role groups (see ``archive.apps``).
* ``--rotate`` replaces an existing token; without it an existing token is printed as is.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from archive.apps import ROLE_PERMISSIONS


def _parse_groups(raw: str | None) -> list[str]:
    if not raw:
        return []
    names = list(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in ROLE_PERMISSIONS]
    if unknown:
        raise CommandError(
            f"unknown group{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}; "
            f"valid role groups are: {', '.join(ROLE_PERMISSIONS)}"
        )
    return names


class Command(BaseCommand):
    help = "Print a user's API token key (creating the token, and with --create-user the user)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="Create the user (with an unusable password) if it does not exist.",
        )
        parser.add_argument(
            "--groups",
            metavar="read,write,...",
            help=f"Comma-separated role groups to add the user to ({', '.join(ROLE_PERMISSIONS)}).",
        )
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Delete the user's existing token and issue a new one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        group_names = _parse_groups(options["groups"])
        User = get_user_model()

        with transaction.atomic():
            user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
            if user is None:
                if not options["create_user"]:
                    raise CommandError(
                        f"user {username!r} does not exist; pass --create-user to create it "
                        "(with an unusable password: it authenticates with its token only)"
                    )
                user = self._create_user(User, username)
                self.stderr.write(f"created user {username!r} (no password; token authentication only)")

            if group_names:
                groups = list(Group.objects.filter(name__in=group_names))
                missing = sorted(set(group_names) - {group.name for group in groups})
                if missing:
                    raise CommandError(
                        f"role group(s) {', '.join(missing)} do not exist; run `manage.py migrate` first"
                    )
                user.groups.add(*groups)
                self.stderr.write(f"{username!r} is in group(s): {', '.join(group_names)}")

            if options["rotate"]:
                deleted, _ = Token.objects.filter(user=user).delete()
                token = Token.objects.create(user=user)
                self.stderr.write("replaced the existing token" if deleted else "created a new token")
            else:
                token, created = Token.objects.get_or_create(user=user)
                if created:
                    self.stderr.write("created a new token")

        self.stdout.write(token.key)

    @staticmethod
    def _create_user(User: Any, username: str) -> Any:
        validator = getattr(User, "username_validator", None)  # absent on some custom user models
        if validator is not None:
            try:
                validator(username)
            except ValidationError as exc:
                raise CommandError(f"invalid username {username!r}: {' '.join(exc.messages)}") from exc
        return User.objects.create_user(**{User.USERNAME_FIELD: username}, password=None)
