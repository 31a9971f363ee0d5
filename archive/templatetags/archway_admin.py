"""Template tags of the admin pages (the dashboard on the admin index)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def archway_dashboard(context: Any) -> dict[str, Any] | None:
    """The dashboard data, for staff who hold the read role (others see the plain index)."""
    from archive.admin import has_role
    from archive.dashboard import dashboard

    request = context.get("request")
    if request is None or not has_role(request, "read"):
        return None
    return dashboard()
