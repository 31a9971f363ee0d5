"""WADO-RS retrieve benchmark: study MB/s, series metadata latency, one frame, big-instance memory.

1. **Study retrieve.** One study of 100 synthetic 512x512 16-bit CT instances (~52 MB) is
   stored with STOW, then ``GET /dicomweb/studies/{study}`` as
   ``multipart/related; type="application/dicom"; transfer-syntax=*`` by 1 and 4
   process-based clients (keep-alive httpx, body streamed and discarded). Next to it the
   same number of bytes from a trivial static server on loopback (the *floor*: what the
   client and loopback can do at all), and one row with the default transfer syntax.
2. **Series metadata.** A series of 1,000 and one of 200 small instances;
   ``GET …/series/{series}/metadata`` 30 times each, then 30 times with ``If-None-Match``.
3. **One frame** of a ~2 GiB multi-frame instance on S3 (SeaweedFS on loopback; the
   filesystem backend when SeaweedFS is missing): 30 random frames, ``Accept:
   application/octet-stream``.
4. **Memory** while that whole instance is retrieved with ``transfer-syntax=*``.

Figures only — nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    MB,
    RESULTS_DIR,
    BenchError,
    RssSampler,
    Server,
    archway_server,
    busy_cpu_seconds,
    cpu_seconds,
    format_table,
    machine_facts,
    percentile,
    run_forked_clients,
)
from bench.stow import (
    InstanceFactory,
    frame_marker,
    multipart_body,
    run_load,
    store_big_instance,
    summarise_profile,
    write_big_instance,
)

NAME = "retrieve"
ACCEPT_ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_DEFAULT_TS = 'multipart/related; type="application/dicom"'
DICOM_JSON = "application/dicom+json"
GET_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
BIG_TIMEOUT = httpx.Timeout(900.0, connect=10.0)
READ_BYTES = 1 << 20  # the client reads the socket in 1 MiB chunks (httpcore's default: 64 KiB)


# --- synthetic data -----------------------------------------------------------------------


class Factory(InstanceFactory):
    """``bench.stow.InstanceFactory`` with the study and series of each instance chosen freely."""

    def make(self, study: int, series: int, number: int) -> tuple[bytes, str]:
        study_ph, series_ph, sop_ph = self._placeholders
        sop_uid = self.uid(3, number)
        data = (
            self.template.replace(sop_ph, sop_uid.encode())
            .replace(series_ph, self.uid(2, series).encode())
            .replace(study_ph, self.uid(1, study).encode())
        )
        return data, sop_uid


def store_instances(server: Server, instances: list[bytes], per_request: int) -> None:
    """STOW ``instances`` (``per_request`` to a request, 2 client threads); raise unless all 200."""
    bodies = [
        multipart_body(instances[start : start + per_request])
        for start in range(0, len(instances), per_request)
    ]
    results, _cpu = run_load(server, bodies, 2, "thread", 300)
    failed = [r for r in results if r.status != 200]
    if failed or sum(r.instances for r in results) != len(instances):
        detail = failed[0].error[:500] if failed else "not every request was sent"
        raise BenchError(f"storing the test data failed ({len(failed)} requests): {detail}")


# --- load generation ----------------------------------------------------------------------


def _large_reads() -> None:
    """Make httpcore read the socket 1 MiB at a time (client side only)."""
    with contextlib.suppress(ImportError, AttributeError):
        from httpcore._sync import http11

        http11.HTTP11Connection.READ_NUM_BYTES = READ_BYTES


@dataclass
class GetResult:
    started: float  # time.monotonic(), comparable across processes on Linux
    ended: float
    status: int  # 0 = transport error
    received: int
    error: str = ""


def _get_loop(
    url: str, headers: dict[str, str], take: Callable[[], bool], max_seconds: float
) -> list[GetResult]:
    """GET ``url`` over one keep-alive connection while ``take()`` grants a request."""
    _large_reads()
    results: list[GetResult] = []
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=GET_TIMEOUT, headers=headers) as client:
        while time.monotonic() < deadline and take():
            started = time.monotonic()
            received, error = 0, ""
            try:
                with client.stream("GET", url) as response:
                    for chunk in response.iter_raw():
                        received += len(chunk)
                    status = response.status_code
                    if status != 200:
                        error = f"{received} bytes, Content-Type {response.headers.get('content-type')}"
            except httpx.HTTPError as exc:
                status, error = 0, f"{type(exc).__name__}: {exc}"
            results.append(GetResult(started, time.monotonic(), status, received, error[:500]))
    return results


def _process_client(
    url: str, headers: dict[str, str], counter: Any, total: int, barrier: Any, queue: Any, max_seconds: float
) -> None:
    def take() -> bool:
        with counter.get_lock():
            granted = counter.value < total
            counter.value += 1
        return bool(granted)

    try:
        barrier.wait(timeout=60)
        cpu = time.process_time()
        results = _get_loop(url, headers, take, max_seconds)
        queue.put(([asdict(r) for r in results], time.process_time() - cpu, ""))
    except BaseException as exc:
        queue.put(([], 0.0, f"{type(exc).__name__}: {exc}"))


def run_gets(
    url: str, headers: dict[str, str], clients: int, total: int, max_seconds: float
) -> tuple[list[GetResult], float]:
    """``total`` GETs of ``url`` by ``clients`` forked client processes; ``(results, client CPU s)``."""
    counter = mp.get_context("fork").Value("q", 0)
    rows, client_cpu = run_forked_clients(
        _process_client,
        clients,
        head=(url, headers, counter, total),
        tail=(max_seconds,),
        report_timeout=max_seconds + 300,
    )
    return [GetResult(**row) for row in rows], client_cpu


@dataclass
class Row:
    label: str
    clients: int
    requests: int
    non_200: int
    wall_s: float
    mb_per_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    bytes_per_response: int
    server_cpu_s: float
    client_cpu_s: float
    other_cpu_s: float
    errors: list[str] = field(default_factory=list)


def measure_row(
    label: str,
    url: str,
    headers: dict[str, str],
    clients: int,
    total: int,
    max_seconds: float,
    server_pids: Callable[[], list[int]],
) -> Row:
    server_cpu, machine_cpu = cpu_seconds(server_pids()), busy_cpu_seconds()
    results, client_cpu = run_gets(url, headers, clients, total, max_seconds)
    server_cpu = cpu_seconds(server_pids()) - server_cpu
    machine_cpu = busy_cpu_seconds() - machine_cpu
    if not results:
        raise BenchError(f"{label}: no request was sent")
    wall = max(r.ended for r in results) - min(r.started for r in results)
    ok = [r for r in results if r.status == 200]
    latencies = [1000 * (r.ended - r.started) for r in results]
    return Row(
        label=label,
        clients=clients,
        requests=len(results),
        non_200=len(results) - len(ok),
        wall_s=wall,
        mb_per_s=sum(r.received for r in ok) / wall / MB,
        requests_per_s=len(ok) / wall,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        max_ms=max(latencies),
        bytes_per_response=max((r.received for r in ok), default=0),
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        other_cpu_s=max(0.0, machine_cpu - server_cpu - client_cpu),
        errors=[f"HTTP {r.status}: {r.error}" for r in results if r.status != 200][:5],
    )


def _rows_table(rows: list[Row]) -> str:
    headers = (
        "row",
        "clients",
        "requests",
        "MB/s",
        "req/s",
        "p50 ms",
        "p95 ms",
        "max ms",
        "non-200",
        "srv cores",
        "client cores",
        "other cores",
    )
    return format_table(
        headers,
        [
            (
                r.label,
                r.clients,
                r.requests,
                r.mb_per_s,
                r.requests_per_s,
                r.p50_ms,
                r.p95_ms,
                r.max_ms,
                r.non_200,
                r.server_cpu_s / r.wall_s,
                r.client_cpu_s / r.wall_s,
                r.other_cpu_s / r.wall_s,
            )
            for r in rows
        ],
    )


# --- the loopback floor -------------------------------------------------------------------


class _FileHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; every GET answers the one file with ``socket.sendfile``."""

    protocol_version = "HTTP/1.1"
    file_path: Path

    def do_GET(self) -> None:
        size = self.file_path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with self.file_path.open("rb") as source:
            self.connection.sendfile(source)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_floor(httpd: ThreadingHTTPServer) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # bench.run's handler raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    httpd.serve_forever()


@contextlib.contextmanager
def floor_server(path: Path) -> Iterator[tuple[str, Any]]:
    """Serve ``path`` from a forked ThreadingHTTPServer on loopback; ``(url, process)``."""
    handler = type("FloorHandler", (_FileHandler,), {"file_path": path})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = httpd.server_address[1]
    process = mp.get_context("fork").Process(target=_serve_floor, args=(httpd,), daemon=True)
    process.start()
    httpd.socket.close()  # the child keeps its copy of the listening socket
    try:
        yield f"http://127.0.0.1:{port}/floor.bin", process
    finally:
        process.terminate()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


# --- 1. study retrieve --------------------------------------------------------------------


def check_study_response(server: Server, url: str, accept: str, stored: list[bytes]) -> dict[str, Any]:
    """Fetch the study once (off the clock) and compare its parts with what was stored."""
    response = httpx.get(url, headers={**server.auth_headers, "Accept": accept}, timeout=GET_TIMEOUT)
    body = response.content
    content_type = response.headers.get("content-type", "")
    boundary = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    payloads: list[bytes] = []
    part_types: set[str] = set()
    if response.status_code == 200 and boundary:
        for chunk in body.split(b"--" + boundary.encode())[1:-1]:
            head, _, payload = chunk.partition(b"\r\n\r\n")
            payloads.append(payload.removesuffix(b"\r\n"))
            for line in head.decode("latin-1").splitlines():
                if line.lower().startswith("content-type:"):
                    part_types.add(line.split(":", 1)[1].strip())
    stored_bytes = sum(len(data) for data in stored)
    return {
        "status": response.status_code,
        "bytes": len(body),
        "parts": len(payloads),
        "stored_bytes": stored_bytes,
        "multipart_overhead_bytes": len(body) - stored_bytes,
        "parts_identical_to_stored": sorted(payloads) == sorted(stored),
        "part_content_types": sorted(part_types),
        "warning": response.headers.get("warning", ""),
    }


def study_section(server: Server, args: argparse.Namespace, result: dict[str, Any]) -> None:
    factory = Factory()
    stored = [factory.make(1, 1, n)[0] for n in range(args.retrieve_study_instances)]
    started = time.monotonic()
    store_instances(server, stored, 10)
    stored_s = time.monotonic() - started
    total = sum(len(data) for data in stored)
    url = f"{server.base_url}/studies/{factory.uid(1, 1)}"
    print(
        f"\n1. study retrieve: {len(stored)} x 512x512 16-bit CT ({total / MB:.1f} MB, stored in "
        f"{stored_s:.1f} s); GET {args.retrieve_requests} per row (4 clients: x2), capped at "
        f"{args.retrieve_max_seconds:.0f} s; floor = Python ThreadingHTTPServer, HTTP/1.1, sendfile()"
    )
    checks = {
        "transfer-syntax=*": check_study_response(server, url, ACCEPT_ANY_TS, stored),
        "default": check_study_response(server, url, ACCEPT_DEFAULT_TS, stored),
    }
    for name, check in checks.items():
        print(
            f"  check ({name}): status {check['status']}, {check['parts']} parts, {check['bytes']:,} bytes "
            f"= stored {check['stored_bytes']:,} + {check['multipart_overhead_bytes']:,} multipart; "
            f"parts identical to stored: {'yes' if check['parts_identical_to_stored'] else 'NO'}; "
            f"part types {check['part_content_types']}"
            + (f"; Warning: {check['warning']}" if check["warning"] else "")
        )
    headers_any = {**server.auth_headers, "Accept": ACCEPT_ANY_TS}
    headers_default = {**server.auth_headers, "Accept": ACCEPT_DEFAULT_TS}
    # Warm-up: every worker serves the study once, off the clock.
    run_gets(url, headers_any, 2, 4, 60)
    n, cap = args.retrieve_requests, args.retrieve_max_seconds
    rows = [
        measure_row("archway ts=*", url, headers_any, 1, n, cap, server.pids),
        measure_row("archway ts=*", url, headers_any, 4, 2 * n, cap, server.pids),
        measure_row("archway default ts", url, headers_default, 4, 2 * n, cap, server.pids),
    ]
    floor_path = server.workdir / "floor.bin"
    with floor_path.open("wb") as out:
        remaining = checks["transfer-syntax=*"]["bytes"] or total
        block = bytes(range(256)) * 4096  # 1 MiB
        while remaining > 0:
            out.write(block[:remaining])
            remaining -= len(block)
    with floor_server(floor_path) as (floor_url, process):
        run_gets(floor_url, {}, 1, 2, 30)

        def floor_pids() -> list[int]:
            return [process.pid]

        rows += [
            measure_row("loopback floor", floor_url, {}, 1, n, cap, floor_pids),
            measure_row("loopback floor", floor_url, {}, 4, 2 * n, cap, floor_pids),
        ]
    floor_path.unlink(missing_ok=True)
    print(_rows_table(rows))
    for row in rows:
        for error in row.errors:
            print(f"    ! {row.label}: {error}")
    result["study"] = {
        "instances": len(stored),
        "stored_bytes": total,
        "store_s": stored_s,
        "checks": checks,
        "floor": "Python http.server.ThreadingHTTPServer (forked process), HTTP/1.1 keep-alive, "
        "socket.sendfile() of one file of the same size",
        "rows": [asdict(row) for row in rows],
    }


# --- 2. series metadata -------------------------------------------------------------------


def _timed_gets(
    client: httpx.Client, url: str, headers: dict[str, str], count: int
) -> tuple[list[float], httpx.Response]:
    times = []
    response = None
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(1000 * (time.perf_counter() - started))
    assert response is not None
    return times, response


def metadata_section(server: Server, args: argparse.Namespace, result: dict[str, Any]) -> None:
    factory = Factory(rows=16, columns=16)
    sizes = [int(s) for s in args.retrieve_metadata_series.split(",") if s.strip()]
    instances: list[bytes] = []
    for series, size in enumerate(sizes, start=1):
        instances += [factory.make(1, series, series * 100_000 + n)[0] for n in range(size)]
    started = time.monotonic()
    store_instances(server, instances, 50)
    stored_s = time.monotonic() - started
    count = args.retrieve_metadata_count
    print(
        f"\n2. series metadata: series of {', '.join(map(str, sizes))} instances (16x16 CT, "
        f"{len(factory.template):,} bytes each; {len(instances)} stored in {stored_s:.1f} s); "
        f"{count} GETs each, one keep-alive connection, sequential"
    )
    rows = []
    with httpx.Client(timeout=GET_TIMEOUT, headers=server.auth_headers) as client:
        for series, size in enumerate(sizes, start=1):
            url = f"{server.base_url}/studies/{factory.uid(1, 1)}/series/{factory.uid(2, series)}/metadata"
            first, response = _timed_gets(client, url, {"Accept": DICOM_JSON}, 1)
            times, response = _timed_gets(client, url, {"Accept": DICOM_JSON}, count)
            items = -1
            with contextlib.suppress(ValueError):
                items = len(response.json())
            etag = response.headers.get("etag", "")
            if etag:
                cached, cached_response = _timed_gets(
                    client, url, {"Accept": DICOM_JSON, "If-None-Match": etag}, count
                )
                cached_status = cached_response.status_code
            else:
                cached, cached_status = [], 0
            rows.append(
                {
                    "instances": size,
                    "status": response.status_code,
                    "items": items,
                    "bytes": len(response.content),
                    "first_ms": first[0],
                    "p50_ms": percentile(times, 50),
                    "p95_ms": percentile(times, 95),
                    "max_ms": max(times),
                    "etag": bool(etag),
                    "if_none_match_status": cached_status,
                    "if_none_match_p50_ms": percentile(cached, 50),
                    "if_none_match_p95_ms": percentile(cached, 95),
                }
            )
    print(
        format_table(
            (
                "instances",
                "status",
                "items",
                "KB",
                "first ms",
                "p50 ms",
                "p95 ms",
                "max ms",
                "If-None-Match",
                "304 p50 ms",
                "304 p95 ms",
            ),
            [
                (
                    r["instances"],
                    r["status"],
                    r["items"],
                    r["bytes"] / 1000,
                    r["first_ms"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["max_ms"],
                    r["if_none_match_status"],
                    r["if_none_match_p50_ms"],
                    r["if_none_match_p95_ms"],
                )
                for r in rows
            ],
        )
    )
    result["metadata"] = {"store_s": stored_s, "gets_per_series": count, "rows": rows}


# --- 3 + 4. the big instance --------------------------------------------------------------


@contextlib.contextmanager
def seaweed_env(workdir: Path) -> Iterator[dict[str, str] | None]:
    """Start SeaweedFS and yield the server's ARCHWAY_S3_* settings; None if it cannot start."""
    try:
        from tests.services import start_seaweedfs

        seaweed = start_seaweedfs(workdir, bucket="archway-bench")
    except Exception as exc:
        print(f"  SeaweedFS did not start ({type(exc).__name__}: {str(exc)[:300]})")
        yield None
        return
    try:
        yield {
            "ARCHWAY_STORAGE": "s3",
            "ARCHWAY_S3_ENDPOINT_URL": seaweed.endpoint_url,
            "ARCHWAY_S3_BUCKET": seaweed.bucket,
            "ARCHWAY_S3_ACCESS_KEY_ID": seaweed.access_key,
            "ARCHWAY_S3_SECRET_ACCESS_KEY": seaweed.secret_key,
            "ARCHWAY_S3_REGION": "us-east-1",
        }
    finally:
        seaweed.stop()


def big_section(
    server: Server,
    backend: str,
    args: argparse.Namespace,
    *,
    whole: bool = True,
    reader: Server | None = None,
) -> dict[str, Any]:
    """Store the multi-frame instance through ``server``; read it back through ``reader`` (default: same)."""
    frames, rows_, columns = args.retrieve_big_frames, 512, 1024
    frame_bytes = rows_ * columns * 2
    factory = Factory()
    path = server.workdir / "big.dcm"
    started = time.monotonic()
    size, study_uid, series_uid, sop_uid = write_big_instance(
        path, factory, frames, rows_, columns, uid_number=888_888_888, label="retrieve"
    )
    generated = time.monotonic() - started
    stored = store_big_instance(server, path, sop_uid)
    path.unlink(missing_ok=True)
    if reader is not None:
        server = reader  # e.g. a cProfiled server sharing the same var dir and bucket
    out: dict[str, Any] = {
        "backend": backend,
        "frames": frames,
        "frame_bytes": frame_bytes,
        "bytes": size,
        "generate_s": generated,
        "store": {k: v for k, v in stored.items() if not k.startswith("rss_samples")},
    }
    print(
        f"\n3+4. {size / 2**30:.2f} GiB multi-frame instance ({frames} frames {columns}x{rows_} 16-bit) "
        f"on {backend}: generated in {generated:.1f} s, STOW status {stored['status']} in "
        f"{stored['wall_s']:.1f} s ({stored['mb_per_s']:.0f} MB/s)"
    )
    if stored["status"] != 200:
        print(f"    ! {stored['error'][:1000]}")
        return out
    instance_url = f"{server.base_url}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
    rng = random.Random(1455)
    numbers = [rng.randrange(1, frames + 1) for _ in range(args.retrieve_frame_count)]
    times: list[float] = []
    bad: list[str] = []
    with httpx.Client(timeout=GET_TIMEOUT, headers=server.auth_headers) as client:
        headers = {"Accept": "application/octet-stream"}
        started_first = time.perf_counter()
        first = client.get(f"{instance_url}/frames/1", headers=headers)
        first_ms = 1000 * (time.perf_counter() - started_first)
        for number in numbers:
            started_one = time.perf_counter()
            response = client.get(f"{instance_url}/frames/{number}", headers=headers)
            times.append(1000 * (time.perf_counter() - started_one))
            body = response.content
            if response.status_code != 200 or len(body) != frame_bytes or body[:4] != frame_marker(number):
                bad.append(
                    f"frame {number}: HTTP {response.status_code}, {len(body)} bytes, "
                    f"{response.headers.get('content-type')}: {body[:200]!r}"
                )
    out["frame"] = {
        "count": len(times),
        "first_status": first.status_code,
        "first_ms": first_ms,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "max_ms": max(times),
        "wrong": len(bad),
        "errors": bad[:5],
    }
    f = out["frame"]
    print(
        f"  one frame ({frame_bytes:,} bytes, Accept application/octet-stream), {len(times)} random frames: "
        f"p50 {f['p50_ms']:.1f} ms, p95 {f['p95_ms']:.1f} ms, max {f['max_ms']:.1f} ms "
        f"(first request, frame 1: {first_ms:.1f} ms); wrong answers: {len(bad)}"
    )
    for error in bad[:3]:
        print(f"    ! {error[:500]}")
    if server.env.get("ARCHWAY_STORAGE") == "s3":
        out["s3_direct"] = s3_direct_frames(server.env, size, frames, frame_bytes, numbers)
        d = out["s3_direct"]
        print(
            f"  the same {len(numbers)} frames straight from SeaweedFS (boto3 ranged GetObject, one client): "
            f"p50 {d['p50_ms']:.1f} ms, p95 {d['p95_ms']:.1f} ms, max {d['max_ms']:.1f} ms; "
            f"wrong: {d['wrong']}" + (f" ({d['error']})" if d.get("error") else "")
        )
    if not whole:
        return out

    _large_reads()
    time.sleep(0.5)
    received, status, error = 0, 0, ""
    with RssSampler(server.process.pid, interval=0.05) as sampler:
        started = time.monotonic()
        first_byte = None
        try:
            with (
                httpx.Client(timeout=BIG_TIMEOUT, headers=server.auth_headers) as client,
                client.stream("GET", instance_url, headers={"Accept": ACCEPT_ANY_TS}) as response,
            ):
                status = response.status_code
                for chunk in response.iter_raw():
                    if first_byte is None:
                        first_byte = time.monotonic()
                    received += len(chunk)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ended = time.monotonic()
        time.sleep(0.2)
    out["whole"] = {
        "status": status,
        "received": received,
        "complete": received >= size,
        "wall_s": ended - started,
        "first_byte_s": (first_byte - started) if first_byte else None,
        "mb_per_s": received / (ended - started) / MB,
        "rss_baseline_mb": sampler.baseline_kb / 1024,
        "rss_peak_mb": sampler.peak_kb / 1024,
        "rss_peak_growth_mb": sampler.peak_growth_kb / 1024,
        "rss_peak_process_growth_mb": sampler.peak_process_growth_kb / 1024,
        "rss_samples": len(sampler.samples),
        "error": error,
    }
    w = out["whole"]
    first_byte_text = f"{w['first_byte_s']:.2f}" if w["first_byte_s"] is not None else "?"
    print(
        f"  whole instance (transfer-syntax=*, streamed to nowhere): status {status}, {received:,} bytes "
        f"({'complete' if w['complete'] else 'INCOMPLETE'}), {w['wall_s']:.1f} s, {w['mb_per_s']:.0f} MB/s, "
        f"first byte after {first_byte_text} s\n"
        f"  server RSS: baseline {w['rss_baseline_mb']:.0f} MB, peak {w['rss_peak_mb']:.0f} MB, "
        f"peak growth {w['rss_peak_growth_mb']:.1f} MB (largest single process "
        f"+{w['rss_peak_process_growth_mb']:.1f} MB; {w['rss_samples']} samples)"
        + (f"\n    ! {error}" if error else "")
    )
    return out


def s3_direct_frames(
    env: dict[str, str], size: int, frames: int, frame_bytes: int, numbers: list[int]
) -> dict[str, Any]:
    """The floor for one frame on S3: the same byte ranges read with boto3, no Archway."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=env["ARCHWAY_S3_ENDPOINT_URL"],
        aws_access_key_id=env["ARCHWAY_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["ARCHWAY_S3_SECRET_ACCESS_KEY"],
        region_name=env.get("ARCHWAY_S3_REGION") or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    bucket = env["ARCHWAY_S3_BUCKET"]
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if item["Size"] == size
    ]
    if not keys:
        return {
            "p50_ms": float("nan"),
            "p95_ms": float("nan"),
            "max_ms": float("nan"),
            "wrong": 0,
            "error": f"no object of {size} bytes in the bucket",
        }
    pixel_offset = size - frames * frame_bytes
    times: list[float] = []
    wrong = 0
    for number in numbers:
        start = pixel_offset + (number - 1) * frame_bytes
        started = time.perf_counter()
        body = client.get_object(
            Bucket=bucket, Key=keys[0], Range=f"bytes={start}-{start + frame_bytes - 1}"
        )["Body"].read()
        times.append(1000 * (time.perf_counter() - started))
        wrong += len(body) != frame_bytes or body[:4] != frame_marker(number)
    return {
        "key": keys[0],
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "max_ms": max(times),
        "wrong": wrong,
    }


# --- profile ------------------------------------------------------------------------------


def _run_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Study retrieve and 1,000-instance metadata against one cProfiled worker.

    The data is stored through a normal server; the profiled server shares its var dir
    (``ARCHWAY_VAR_DIR``), so the profile holds reads only.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_path = RESULTS_DIR / f"retrieve-profile-{stamp}.pstats"
    print("\nprofile: one cProfiled worker; study retrieve x 8 (2 clients) and series metadata x 10")
    profiled: dict[str, Any] = {}
    with archway_server(workers=1) as loader:
        study = Factory()
        store_instances(loader, [study.make(1, 1, n)[0] for n in range(args.retrieve_study_instances)], 10)
        small = Factory(rows=16, columns=16)
        store_instances(loader, [small.make(1, 1, n)[0] for n in range(1000)], 50)
        with archway_server(
            profile_out=profile_path, extra_env={"ARCHWAY_VAR_DIR": str(loader.var_dir)}
        ) as server:
            url = f"{server.base_url}/studies/{study.uid(1, 1)}"
            headers = {**server.auth_headers, "Accept": ACCEPT_ANY_TS}
            run_gets(url, headers, 1, 1, 60)
            row = measure_row("profiled ts=*", url, headers, 2, 8, 120, server.pids)
            print(_rows_table([row]))
            meta_url = f"{server.base_url}/studies/{small.uid(1, 1)}/series/{small.uid(2, 1)}/metadata"
            with httpx.Client(timeout=GET_TIMEOUT, headers=server.auth_headers) as client:
                times, _ = _timed_gets(client, meta_url, {"Accept": DICOM_JSON}, 10)
            print(f"  profiled metadata (1,000 instances): p50 {percentile(times, 50):.0f} ms")
            profiled = {"study_row": asdict(row), "metadata_p50_ms": percentile(times, 50)}
    if profile_path.exists():
        print(summarise_profile(profile_path))
        print(f"profile stats: {profile_path}")
        profiled["pstats"] = str(profile_path)
    if args.retrieve_big_frames > 0:
        profiled["frames"] = _profile_frames(args, stamp)
    return profiled


def _profile_frames(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    """Single frames of a 256-frame instance on S3 (SeaweedFS) from one cProfiled worker."""
    profile_path = RESULTS_DIR / f"retrieve-profile-frames-{stamp}.pstats"
    frames = min(args.retrieve_big_frames, 256)
    weed_dir = Path(tempfile.mkdtemp(prefix="archway-bench-weed-"))
    out: dict[str, Any] = {}
    try:
        with seaweed_env(weed_dir) as s3_env:
            backend = "S3 (SeaweedFS)" if s3_env is not None else "filesystem"
            print(f"\nprofile: one cProfiled worker; {args.retrieve_frame_count} single frames, {backend}")
            with (
                archway_server(workers=1, extra_env=s3_env or {}) as loader,
                archway_server(
                    profile_out=profile_path,
                    extra_env={**(s3_env or {}), "ARCHWAY_VAR_DIR": str(loader.var_dir)},
                ) as server,
            ):
                profile_args = argparse.Namespace(**{**vars(args), "retrieve_big_frames": frames})
                out = big_section(loader, backend, profile_args, whole=False, reader=server)
    finally:
        shutil.rmtree(weed_dir, ignore_errors=True)
    if profile_path.exists():
        print(summarise_profile(profile_path))
        print(f"profile stats: {profile_path}")
        out["pstats"] = str(profile_path)
    return out


# --- entry points -------------------------------------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    """Options of this benchmark (``python -m bench.run retrieve --help``)."""
    parser.add_argument(
        "--retrieve-study-instances", type=int, default=100, help="CT instances in the study (default 100)"
    )
    parser.add_argument(
        "--retrieve-requests",
        type=int,
        default=20,
        help="study GETs per 1-client row; 4-client rows make twice as many (default 20)",
    )
    parser.add_argument(
        "--retrieve-max-seconds", type=float, default=20.0, help="cap on each study row (default 20)"
    )
    parser.add_argument(
        "--retrieve-metadata-series",
        default="1000,200",
        help="sizes of the metadata series, comma-separated (default 1000,200)",
    )
    parser.add_argument(
        "--retrieve-metadata-count", type=int, default=30, help="metadata GETs per series (default 30)"
    )
    parser.add_argument(
        "--retrieve-big-frames",
        type=int,
        default=2048,
        help="1 MiB frames in the large instance (default 2048 = 2 GiB; 0 skips parts 3 and 4)",
    )
    parser.add_argument(
        "--retrieve-frame-count", type=int, default=30, help="random single-frame GETs (default 30)"
    )
    parser.add_argument(
        "--retrieve-big-backend",
        choices=("s3", "filesystem", "both"),
        default="s3",
        help="where the large instance lives (default s3: SeaweedFS, filesystem if it cannot start)",
    )
    parser.add_argument(
        "--retrieve-profile",
        action="store_true",
        help="also profile study retrieve and metadata on one cProfiled worker",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the retrieve benchmark, print its figures, return them for the JSON results file."""
    workers: int = args.workers
    facts = machine_facts()
    versions = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    result: dict[str, Any] = {"benchmark": NAME, "machine": facts, "workers": workers}
    with archway_server(workers=workers) as server:
        print(
            f"WADO-RS retrieve  server: uvicorn --workers {server.workers}, embedded profile "
            f"(SQLite + filesystem blobs) unless stated\n"
            f"machine: nproc {facts['nproc']} ({facts['cpu_model'] or 'unknown CPU'}), "
            f"{facts['mem_total_mb'] / 1024:.0f} GiB RAM, Python {facts['python']}; {versions}; "
            f"load average before the run {facts['load_average']}\n"
            "NOTE: client and server share this machine; client CPU is taken from the server's budget.\n"
            "clients: forked processes, one keep-alive httpx connection each, "
            f"socket read {READ_BYTES >> 20} MiB at a time, body discarded",
            flush=True,
        )
        study_section(server, args, result)
        metadata_section(server, args, result)
        if args.retrieve_big_frames > 0 and args.retrieve_big_backend in ("filesystem", "both"):
            result.setdefault("big", []).append(big_section(server, "filesystem", args))
    if args.retrieve_big_frames > 0 and args.retrieve_big_backend in ("s3", "both"):
        weed_dir = Path(tempfile.mkdtemp(prefix="archway-bench-weed-"))
        try:
            with seaweed_env(weed_dir) as s3_env:
                if s3_env is None:
                    print("  -> the large instance goes to the filesystem backend instead")
                    with archway_server(workers=workers) as server:
                        result.setdefault("big", []).append(
                            big_section(server, "filesystem (SeaweedFS unavailable)", args)
                        )
                else:
                    with archway_server(workers=workers, extra_env=s3_env) as server:
                        result.setdefault("big", []).append(
                            big_section(server, "S3 (SeaweedFS on loopback)", args)
                        )
        finally:
            shutil.rmtree(weed_dir, ignore_errors=True)
    if args.retrieve_profile:
        result["profile"] = _run_profile(args)
    return result
