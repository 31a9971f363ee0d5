"""Helpers for admin tests: a logged-in browser-like httpx client and quick stores."""

from __future__ import annotations

import re

import httpx

from tests.conftest import make_user
from tests.factories import multipart_body


def login(live_url: str, username: str, roles: tuple[str, ...] = ("read", "write", "delete")) -> httpx.Client:
    """A staff user with ``roles``, logged in through the admin login form (session + CSRF)."""
    user, _ = make_user(username, roles)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = httpx.Client(base_url=live_url, timeout=60, follow_redirects=False)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/admin/login/?next=/admin/",
        data={"username": username, "password": "pw-" + username, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302, response.text[:500]
    return client


def csrf(client: httpx.Client, url: str) -> str:
    """The CSRF token of the form on ``url``."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def stow(api: httpx.Client, *parts: bytes) -> None:
    body, content_type = multipart_body(list(parts))
    response = api.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
