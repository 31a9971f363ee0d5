"""Real-services tier: the event channel over the Redis channel layer, across processes.

Two separate uvicorn server processes share the PostgreSQL test database and one Redis
channel layer (a prefix unique to this run, so parallel runs never hear each other). An
event raised through one server reaches a WebSocket client connected to the other —
what ``make run`` with several workers, or several web nodes, relies on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_user
from tests.workitems.helpers import claim, create, event_channel, next_report, no_more, summary

pytestmark = pytest.mark.real_services

REDIS_URL = os.environ.get("ARCHWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(transactional_db, tmp_path) -> Iterator[tuple[str, str, dict]]:
    import redis
    from django.db import connection

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unavailable at {REDIS_URL}: {exc}")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "ARCHWAY_CHANNEL_LAYER_URL": REDIS_URL,
        "ARCHWAY_CHANNEL_LAYER_PREFIX": f"archway-test-{uuid.uuid4().hex}",
        "ARCHWAY_VAR_DIR": str(tmp_path),
        "ARCHWAY_STORAGE": "filesystem",
        "SECRET_KEY": "test-" + uuid.uuid4().hex,
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_MAX_SIZE": "4",
    }
    env.pop("ARCHWAY_TEST_TIER", None)
    processes, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "config.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                        "--lifespan",
                        "off",
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for process, url in zip(processes, urls, strict=True):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/dicomweb/workitems", timeout=2).status_code == 401:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn at {url} did not start")
                time.sleep(0.2)
        yield urls[0], urls[1], env
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_event_raised_on_one_server_reaches_a_client_of_the_other(two_servers):
    first, second, env = two_servers
    _, token = make_user("scheduler", ("worklist",))
    with httpx.Client(base_url=first, headers={"Authorization": f"Bearer {token}"}, timeout=60) as ups:
        uid = create(ups)
        with event_channel(second, "REMOTE", token) as ws:
            assert ups.post(f"/dicomweb/workitems/{uid}/subscribers/REMOTE").status_code == 201
            assert summary(next_report(ws)) == (1, uid, "SCHEDULED")
            claim(ups, uid)
            assert summary(next_report(ws)) == (1, uid, "IN PROGRESS")
            assert ups.post(f"/dicomweb/workitems/{uid}/cancelrequest").status_code == 202
            assert summary(next_report(ws)) == (2, uid, None)
            # an SCP Status Change from the operator's command, a third process
            result = subprocess.run(
                [sys.executable, "manage.py", "worklist_status", "going-down"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            report = next_report(ws)
            assert report["00001002"]["Value"] == [4]
            assert report["00741242"]["Value"] == ["GOING DOWN"]
            assert no_more(ws)
