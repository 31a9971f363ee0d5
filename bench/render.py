"""Rendering benchmark: rendered JPEG latency, thumbnail latency cold/warm, worker throughput.

1. **Rendered JPEG** of a 512x512 16-bit CT instance (``…/instances/{i}/rendered``,
   ``Accept: image/jpeg``) and of random frames of a compressed multi-frame instance
   (``…/frames/{n}/rendered``; JPEG 2000 lossless, or RLE when no J2K encoder is
   installed), sequential GETs on one keep-alive connection: p50/p95.
2. **Thumbnails** of 512x512 CT instances on a server that does not make them on store
   (``ARCHWAY_THUMBNAILS_ON_STORE=false``): the first GET of each is *cold* (rendered
   and stored now), the second *warm* (read from blob storage).
3. **Worker throughput** (only when Redis answers on 127.0.0.1:6379): instances are
   stored while no worker runs, so their thumbnail tasks wait in Redis; then one
   ``celery worker -Q thumbnails`` process (``--concurrency`` from the option) drains
   the queue. Throughput = thumbnails / (last made - first made), from the derived
   files' modification times, so worker start-up is not counted.

Figures only — nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    PROJECT_ROOT,
    BenchError,
    Server,
    archway_server,
    format_table,
    machine_facts,
    percentile,
)
from bench.stow import InstanceFactory, multipart_body


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--render-count", type=int, default=60, help="GETs per latency row (default 60)")
    group.add_argument("--render-frames", type=int, default=30, help="frames of the multi-frame (default 30)")
    group.add_argument(
        "--render-thumbnails", type=int, default=40, help="instances for the cold/warm rows (default 40)"
    )
    group.add_argument(
        "--render-worker-instances", type=int, default=200, help="thumbnails the worker makes (default 200)"
    )
    group.add_argument(
        "--render-worker-concurrency", type=int, default=2, help="worker processes (default 2)"
    )


def _store(server: Server, parts: list[bytes], batch: int = 20) -> None:
    with httpx.Client(base_url=server.base_url, headers=server.auth_headers, timeout=300) as client:
        for start in range(0, len(parts), batch):
            body = multipart_body(parts[start : start + batch])
            response = client.post(
                "/studies",
                content=body.content,
                headers={"Content-Type": body.content_type, "Accept": "application/dicom+json"},
            )
            if response.status_code != 200:
                raise BenchError(f"STOW failed: {response.status_code} {response.text[:300]}")


def _ct(factory: InstanceFactory, n: int) -> tuple[bytes, tuple[str, str, str]]:
    """Instance ``n`` of the STOW benchmark's 512x512 CT (noise pixels: a worst case for JPEG)."""
    from bench.stow import INSTANCES_PER_SERIES, INSTANCES_PER_STUDY

    data, sop_uid = factory.instance(n)
    study = factory.uid(1, n // INSTANCES_PER_STUDY + 1)
    series = factory.uid(2, n // INSTANCES_PER_SERIES + 1)
    return data, (study, series, sop_uid)


def _multi_frame(frames: int) -> tuple[bytes, tuple[str, str, str], str]:
    """A compressed multi-frame CT (JPEG 2000 lossless, else RLE lossless)."""
    import numpy as np
    from pydicom.uid import JPEG2000Lossless, RLELossless

    from tests.factories import make_dataset, to_part10

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    body = ((np.hypot(yy - 128, xx - 128) < 100) * 1000 + 24).astype(np.uint16)
    stack = np.stack([body + rng.integers(0, 40, body.shape, dtype=np.uint16) for _ in range(frames)])
    ds = make_dataset(
        rows=256, columns=256, frames=frames, NumberOfFrames=frames, WindowCenter=40, WindowWidth=400
    )
    ds.PixelData = stack.tobytes()
    for syntax in (JPEG2000Lossless, RLELossless):
        try:
            ds.compress(syntax, stack)
            break
        except Exception:
            continue
    data = to_part10(ds, transfer_syntax=ds.file_meta.TransferSyntaxUID)
    return (
        data,
        (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID),
        str(ds.file_meta.TransferSyntaxUID),
    )


def _url(uids: tuple[str, str, str]) -> str:
    study, series, instance = uids
    return f"/studies/{study}/series/{series}/instances/{instance}"


def _timed(client: httpx.Client, urls: list[str], accept: str = "image/jpeg") -> list[float]:
    times = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url, headers={"Accept": accept})
        elapsed = 1000 * (time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(f"GET {url}: {response.status_code} {response.text[:300]}")
        times.append(elapsed)
    return times


def _row(name: str, times: list[float]) -> dict[str, Any]:
    return {"name": name, "n": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def latency_section(args: argparse.Namespace, result: dict[str, Any]) -> None:
    factory = InstanceFactory()
    ct, ct_uids = _ct(factory, 1)
    multi, multi_uids, syntax = _multi_frame(args.render_frames)
    rows = []
    with archway_server(workers=args.workers, extra_env={"ARCHWAY_THUMBNAILS_ON_STORE": "false"}) as server:
        _store(server, [ct, multi], batch=1)
        cts = [_ct(factory, 100 + n) for n in range(args.render_thumbnails)]
        _store(server, [data for data, _ in cts])
        with httpx.Client(base_url=server.base_url, headers=server.auth_headers, timeout=120) as client:
            _timed(client, [_url(ct_uids) + "/rendered"] * 5)  # warm-up: imports, codecs
            rows.append(
                _row(
                    "rendered JPEG, 512x512 CT",
                    _timed(client, [_url(ct_uids) + "/rendered"] * args.render_count),
                )
            )
            frames = [random.randint(1, args.render_frames) for _ in range(args.render_count)]
            rows.append(
                _row(
                    f"rendered JPEG, frame of {args.render_frames}-frame 256x256 ({syntax})",
                    _timed(client, [f"{_url(multi_uids)}/frames/{n}/rendered" for n in frames]),
                )
            )
            # The floor: a small JSON response through the same auth and index lookup.
            floor = _timed(client, [_url(uids) + "/metadata" for _, uids in cts], "application/dicom+json")
            rows.append(_row("floor: instance metadata (small JSON)", floor))
            thumbs = [_url(uids) + "/thumbnail" for _, uids in cts]
            rows.append(_row("thumbnail cold (rendered + stored)", _timed(client, thumbs)))
            rows.append(_row("thumbnail warm (from storage)", _timed(client, thumbs)))
    result["latency"] = rows
    print("\n1-2. rendered and thumbnail latency (sequential, one keep-alive connection)")
    print(
        format_table(
            ["request", "n", "p50 ms", "p95 ms"],
            [[r["name"], r["n"], r["p50_ms"], r["p95_ms"]] for r in rows],
        )
    )


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def worker_section(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if not _redis_up():
        print("\n3. worker throughput: skipped (no Redis on 127.0.0.1:6379)")
        result["worker"] = {"skipped": "no Redis on 127.0.0.1:6379"}
        return
    count = args.render_worker_instances
    prefix = f"archway-bench-{uuid.uuid4().hex[:10]}:"
    extra = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "ARCHWAY_CELERY_KEY_PREFIX": prefix}
    factory = InstanceFactory()
    parts = [factory.instance(1000 + n)[0] for n in range(count)]
    with archway_server(workers=args.workers, extra_env=extra) as server:
        _store(server, parts)  # tasks wait in Redis: no worker yet
        derived = server.var_dir / "blobs" / "derived"
        worker_log = (server.workdir / "worker.log").open("wb")
        command = [
            str(Path(sys.executable).with_name("celery")), "-A", "config", "worker", "--queues", "thumbnails",
            "--concurrency", str(args.render_worker_concurrency), "--loglevel", "WARNING",
            "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        worker = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=server.env, stdout=worker_log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 600
            made: list[float] = []
            while time.monotonic() < deadline and worker.poll() is None:
                made = [p.stat().st_mtime for p in derived.rglob("thumbnail-*")] if derived.exists() else []
                if len(made) >= count:
                    break
                time.sleep(0.5)
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
            worker_log.close()
    if len(made) < 2:
        raise BenchError(f"the worker made {len(made)} of {count} thumbnails")
    span = max(made) - min(made)
    rate = (len(made) - 1) / span if span > 0 else float("inf")
    result["worker"] = {
        "thumbnails": len(made),
        "concurrency": args.render_worker_concurrency,
        "per_second": rate,
    }
    print(
        f"\n3. worker throughput: {len(made)} thumbnails of 512x512 CT by one worker "
        f"(--concurrency {args.render_worker_concurrency}): {rate:.1f} thumbnails/s"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_facts()}
    print(f"render benchmark; load average {result['machine']['load_average']}")
    latency_section(args, result)
    worker_section(args, result)
    return result
