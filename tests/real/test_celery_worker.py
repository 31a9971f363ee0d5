"""A real Celery worker process over Redis builds the thumbnail of an instance stored over HTTP.

The worker is ``celery -A config worker`` in a subprocess, pointed at the same PostgreSQL
test database and the same SeaweedFS bucket/prefix as the in-process server; Redis keys
and channels get a per-run prefix (``ARCHWAY_CELERY_KEY_PREFIX``), so parallel runs on
the shared Redis never see each other's messages or workers. The in-process server
publishes to that Redis for the duration of the test instead of running tasks eagerly.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from archive import storage
from archive.models import Instance
from rendering import thumbnails
from tests.dicomweb.test_stow import stow
from tests.factories import make_dataset, to_part10

pytestmark = pytest.mark.real_services

REDIS = ("127.0.0.1", 6379)
BROKER_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


def _redis_problem() -> str | None:
    try:
        with socket.create_connection(REDIS, timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return "Redis at 127.0.0.1:6379 did not answer PING"
    except OSError as exc:
        return f"Redis at 127.0.0.1:6379 cannot be reached: {exc}"
    return None


def _worker_env(prefix: str, tmp_path: Path) -> dict[str, str]:
    db = connection.settings_dict
    options = settings.STORAGES["dicom"]["OPTIONS"]
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "ARCHWAY_VAR_DIR": str(tmp_path),
        "ARCHWAY_STORAGE": "s3",
        "ARCHWAY_S3_ENDPOINT_URL": options["endpoint_url"],
        "ARCHWAY_S3_BUCKET": options["bucket_name"],
        "ARCHWAY_S3_ACCESS_KEY_ID": options["access_key"],
        "ARCHWAY_S3_SECRET_ACCESS_KEY": options["secret_key"],
        "ARCHWAY_S3_PREFIX": options.get("location", ""),
        "CELERY_BROKER_URL": BROKER_URL,
        "ARCHWAY_CELERY_KEY_PREFIX": prefix,
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_MAX_SIZE": "2",
        "PYTHONUNBUFFERED": "1",
    }


def _reset_producer(app) -> None:
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(live_url, dicom_storage, tmp_path, settings) -> Iterator[dict]:
    if problem := _redis_problem():
        pytest.skip(problem)
    settings.ARCHWAY_THUMBNAILS_ON_STORE = True  # what CELERY_BROKER_URL turns on in production
    from config.celery import app

    prefix = f"archway-test-{uuid.uuid4().hex[:12]}:"
    env = _worker_env(prefix, tmp_path)
    name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    celery = str(Path(sys.executable).with_name("celery"))
    process = subprocess.Popen(
        [celery, "-A", "config", "worker", "--queues", "thumbnails,transcode,maintenance", "--pool", "solo",
         "--hostname", name, "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "broker_transport_options")}
    app.conf.update(
        task_always_eager=False,
        broker_url=BROKER_URL,
        broker_transport_options={**saved["broker_transport_options"], "global_keyprefix": prefix},
    )
    _reset_producer(app)
    try:
        deadline = time.monotonic() + 60
        while name not in (app.control.inspect(timeout=1).ping() or {}):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-4000:]}")
        yield {"env": env, "log": log_path, "name": name}
    finally:
        app.conf.update(saved)
        _reset_producer(app)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_worker_builds_the_thumbnail_after_a_stow(api, celery_worker):
    ds = make_dataset(rows=64, columns=64, WindowCenter=0, WindowWidth=2000)
    ds.PixelData = np.full((64, 64), 1024, np.uint16).tobytes()  # 0 HU → 127.6 in the window
    assert stow(api, [to_part10(ds)]).status_code == 200
    source = thumbnails.instance_source(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    key = thumbnails.thumbnail_key(source, 1, 128, 128, "image/jpeg")

    deadline = time.monotonic() + 60  # only the worker can make it: nothing has asked for it yet
    while not storage.exists(key):
        assert time.monotonic() < deadline, celery_worker["log"].read_text()[-4000:]
        time.sleep(0.2)

    base = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    response = api.get(f"{base}/thumbnail")
    assert response.status_code == 200
    assert response.headers["Archway-Thumbnail"] == "stored"
    assert response.content == b"".join(storage.open_stream(key))
    pixels = np.array(Image.open(io.BytesIO(response.content)))
    assert pixels.shape == (128, 128)
    assert abs(int(pixels.min()) - 128) <= 1 and abs(int(pixels.max()) - 128) <= 1  # flat grey (JPEG)
    log = celery_worker["log"].read_text()
    assert f"rendering.make_thumbnails: made study {ds.StudyInstanceUID}" in log
    assert ds.SOPInstanceUID in log


def test_worker_deletes_blobs_and_thumbnails(api, celery_worker):
    ds = make_dataset()
    assert stow(api, [to_part10(ds)]).status_code == 200
    instance = Instance.objects.get(instance_uid=ds.SOPInstanceUID)
    source = thumbnails.source_by_pk(instance.pk)
    key = thumbnails.thumbnail_key(source, 1, 128, 128, "image/jpeg")
    deadline = time.monotonic() + 60
    while not storage.exists(key):
        assert time.monotonic() < deadline, celery_worker["log"].read_text()[-4000:]
        time.sleep(0.2)
    assert api.delete(f"/dicomweb/studies/{ds.StudyInstanceUID}").status_code == 204
    while storage.exists(instance.blob_key) or storage.exists(key):
        assert time.monotonic() < deadline + 60, celery_worker["log"].read_text()[-4000:]
        time.sleep(0.2)
    assert "archive.delete_blobs: deleted 2 blob(s)" in celery_worker["log"].read_text()


def test_worker_health_reports_the_worker_and_fails_without_one(celery_worker, tmp_path):
    manage = [sys.executable, str(ROOT / "manage.py"), "worker_health", "--timeout", "3"]
    healthy = subprocess.run(manage, env=celery_worker["env"], capture_output=True, text=True, timeout=120)
    assert healthy.returncode == 0, healthy.stderr
    assert f"ok: {celery_worker['name']}" in healthy.stdout
    assert "queue thumbnails: 1 worker(s)" in healthy.stdout
    nobody = {**celery_worker["env"], "ARCHWAY_CELERY_KEY_PREFIX": f"archway-none-{uuid.uuid4().hex}:"}
    unhealthy = subprocess.run([*manage[:-1], "1"], env=nobody, capture_output=True, text=True, timeout=120)
    assert unhealthy.returncode == 1
    assert "no worker answered" in unhealthy.stderr
