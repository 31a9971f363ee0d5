"""Django's system checks: a configured install starts without warnings."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.both_tiers


@override_settings(SECRET_KEY="a-real-deployment-key-" + "x" * 40)  # the dev default warns (archive.W001)
def test_system_checks_with_the_database_report_no_issues(db) -> None:
    """``migrate`` (every ``make run``) runs the database checks too: none may warn, on either tier."""
    out, err = io.StringIO(), io.StringIO()
    call_command("check", "--database", "default", stdout=out, stderr=err)
    output = out.getvalue() + err.getvalue()
    assert "System check identified no issues" in output, output
