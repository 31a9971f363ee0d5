"""STOW-RS benchmark: store throughput and latency, and memory while storing a 1 GiB instance.

One throw-away server (``bench.common.archway_server``: fresh SQLite + filesystem blobs,
``uvicorn --workers 2``), then:

1. **Throughput.** Synthetic 512x512 16-bit CT instances (~525 KB each), every one with
   its own SOP Instance UID, posted to ``/dicomweb/studies`` as
   ``multipart/related; type="application/dicom"`` — one instance per request (what
   modalities and OHIF send) and, as a variant, ten per request — by 1 and by 4
   concurrent clients, each with its own keep-alive connection. All request bodies are
   built before the clock starts. Reported: instances/s, MB/s of request body, p50/p95
   request latency, non-200 answers (with their bodies), and CPU seconds used by the
   server and by the client (they share the machine).
2. **Memory.** One 1 GiB multi-frame instance (1024x1024x16-bit frames), generated as a
   file on disk and streamed from it with chunked transfer encoding. The RSS of all
   server processes is sampled every 50 ms; reported: peak growth over the baseline,
   wall time, status, and whether the response references the instance's UID.

Figures only — nothing is asserted. ``--profile`` additionally runs a short load against
a single cProfiled worker and prints where server time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import pstats
import random
import sqlite3
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
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
    format_table,
    machine_facts,
    percentile,
    run_forked_clients,
)

NAME = "stow"
UID_ROOT = "1.2.826.0.1.3680043.10.1455.9."  # the project's test/benchmark UID root
DICOM_JSON = "application/dicom+json"
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
BIG_TIMEOUT = httpx.Timeout(900.0, connect=10.0)
INSTANCES_PER_SERIES = 50
INSTANCES_PER_STUDY = 200


# --- synthetic data -----------------------------------------------------------------------


class InstanceFactory:
    """Part 10 bytes of distinct synthetic CT instances, made by patching one template.

    The template is written once with pydicom (``tests.factories``); every UID in it has
    the same fixed length, so a new instance is three ``bytes.replace`` calls, not a
    pydicom round trip. Instance *n* belongs to series ``n // 50`` and study ``n // 200``.
    """

    def __init__(self, rows: int = 512, columns: int = 512) -> None:
        from tests.factories import make_dataset, to_part10

        self.run_id = str(random.randrange(10**7, 10**8))  # no leading zero (PS3.5 §9.1)
        ds = make_dataset(
            study_uid=self.uid(1, 0),
            series_uid=self.uid(2, 0),
            instance_uid=self.uid(3, 0),
            rows=rows,
            columns=columns,
            patient_id="BENCH-1",
            patient_name="Bench^Stow",
            StudyDescription="STOW benchmark",
        )
        self.template = to_part10(ds)
        self._placeholders = [self.uid(kind, 0).encode() for kind in (1, 2, 3)]
        for placeholder in self._placeholders:
            if placeholder not in self.template:
                raise BenchError("template instance does not contain its UID placeholder")

    def uid(self, kind: int, number: int) -> str:
        """A fixed-length valid UID: kind 1 = study, 2 = series, 3 = SOP instance."""
        return f"{UID_ROOT}{self.run_id}.{kind}.{10**9 + number}"

    def instance(self, number: int) -> tuple[bytes, str]:
        """Part 10 bytes and SOP Instance UID of instance ``number``."""
        study, series, sop = self._placeholders
        sop_uid = self.uid(3, number + 1)
        data = (
            self.template.replace(sop, sop_uid.encode())
            .replace(series, self.uid(2, number // INSTANCES_PER_SERIES + 1).encode())
            .replace(study, self.uid(1, number // INSTANCES_PER_STUDY + 1).encode())
        )
        return data, sop_uid


@dataclass
class Body:
    """One pre-built STOW request."""

    content: bytes
    content_type: str
    instances: int


def multipart_body(parts: Sequence[bytes]) -> Body:
    """A ``multipart/related; type="application/dicom"`` request body holding ``parts``."""
    boundary = uuid.uuid4().hex
    dash = b"--" + boundary.encode()
    pieces: list[bytes] = []
    for part in parts:
        pieces += [dash, b"\r\nContent-Type: application/dicom\r\n\r\n", part, b"\r\n"]
    pieces += [dash, b"--\r\n"]
    return Body(
        content=b"".join(pieces),
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        instances=len(parts),
    )


def build_bodies(factory: InstanceFactory, first: int, count: int, per_request: int) -> list[Body]:
    """``count`` instances numbered from ``first``, ``per_request`` to a request."""
    bodies = []
    for start in range(first, first + count, per_request):
        stop = min(start + per_request, first + count)
        bodies.append(multipart_body([factory.instance(n)[0] for n in range(start, stop)]))
    return bodies


# --- load generation ----------------------------------------------------------------------


@dataclass
class RequestResult:
    started: float  # time.monotonic(), comparable across processes on Linux
    ended: float
    status: int  # 0 = transport error
    sent: int
    instances: int
    error: str = ""


def _send_loop(
    url: str, headers: dict[str, str], bodies: Sequence[Body], take: Callable[[], int], max_seconds: float
) -> list[RequestResult]:
    """Post bodies (indices from ``take``) over one keep-alive connection until none are left."""
    results: list[RequestResult] = []
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=REQUEST_TIMEOUT, headers=headers) as client:
        while time.monotonic() < deadline:
            index = take()
            if index >= len(bodies):
                break
            body = bodies[index]
            started = time.monotonic()
            try:
                response = client.post(url, content=body.content, headers={"Content-Type": body.content_type})
                status, error = response.status_code, ("" if response.status_code == 200 else response.text)
            except httpx.HTTPError as exc:
                status, error = 0, f"{type(exc).__name__}: {exc}"
            results.append(
                RequestResult(
                    started, time.monotonic(), status, len(body.content), body.instances, error[:1000]
                )
            )
    return results


# Process mode: the bodies are inherited by fork (copy-on-write), not pickled.
_FORK_BODIES: Sequence[Body] = ()


def _process_client(
    url: str,
    headers: dict[str, str],
    counter: Any,
    barrier: Any,
    queue: Any,
    max_seconds: float,
) -> None:
    def take() -> int:
        with counter.get_lock():
            value = counter.value
            counter.value += 1
        return int(value)

    try:
        barrier.wait(timeout=60)
        cpu = time.process_time()
        results = _send_loop(url, headers, _FORK_BODIES, take, max_seconds)
        queue.put(([asdict(result) for result in results], time.process_time() - cpu, ""))
    except BaseException as exc:
        queue.put(([], 0.0, f"{type(exc).__name__}: {exc}"))


def run_load(
    server: Server, bodies: Sequence[Body], clients: int, mode: str, max_seconds: float
) -> tuple[list[RequestResult], float]:
    """Send ``bodies`` with ``clients`` concurrent clients; ``(results, client CPU seconds)``."""
    url = f"{server.base_url}/studies"
    headers = {**server.auth_headers, "Accept": DICOM_JSON}
    if mode == "thread":
        lock = threading.Lock()
        counter = itertools.count()

        def take() -> int:
            with lock:
                return next(counter)

        outputs: list[list[RequestResult]] = [[] for _ in range(clients)]
        failures: list[BaseException] = []

        def client_thread(slot: int) -> None:
            try:
                outputs[slot] = _send_loop(url, headers, bodies, take, max_seconds)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=client_thread, args=(i,), daemon=True) for i in range(clients)]
        cpu = time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max_seconds + 180)
        client_cpu = time.process_time() - cpu
        if failures:
            raise BenchError(f"a client thread crashed: {failures[0]!r}")
        if any(thread.is_alive() for thread in threads):
            raise BenchError("a client thread did not finish in time")
        return [result for output in outputs for result in output], client_cpu

    global _FORK_BODIES
    _FORK_BODIES = bodies
    shared_counter = mp.get_context("fork").Value("q", 0)
    try:
        rows, client_cpu = run_forked_clients(
            _process_client,
            clients,
            head=(url, headers, shared_counter),
            tail=(max_seconds,),
            report_timeout=max_seconds + 180,
        )
        return [RequestResult(**row) for row in rows], client_cpu
    finally:
        _FORK_BODIES = ()


@dataclass
class PhaseResult:
    clients: int
    per_request: int
    client_mode: str
    requests: int
    instances_ok: int
    non_200: int
    wall_s: float
    instances_per_s: float
    mb_per_s: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    server_cpu_s: float
    client_cpu_s: float
    other_cpu_s: float  # everything else on the machine during the row
    errors: list[str] = field(default_factory=list)

    @property
    def server_cpu_ms_per_instance(self) -> float:
        return 1000 * self.server_cpu_s / self.instances_ok if self.instances_ok else float("nan")


def measure_phase(
    server: Server, bodies: Sequence[Body], clients: int, per_request: int, mode: str, max_seconds: float
) -> PhaseResult:
    """Run one load phase and turn its request results into figures."""
    server_cpu, machine_cpu = server.cpu_seconds(), busy_cpu_seconds()
    results, client_cpu = run_load(server, bodies, clients, mode, max_seconds)
    server_cpu = server.cpu_seconds() - server_cpu
    machine_cpu = busy_cpu_seconds() - machine_cpu
    if not results:
        raise BenchError("no request was sent")
    wall = max(r.ended for r in results) - min(r.started for r in results)
    ok = [r for r in results if r.status == 200]
    latencies = [1000 * (r.ended - r.started) for r in results]
    errors = [f"HTTP {r.status}: {r.error}" for r in results if r.status != 200]
    return PhaseResult(
        clients=clients,
        per_request=per_request,
        client_mode=mode,
        requests=len(results),
        instances_ok=sum(r.instances for r in ok),
        non_200=len(errors),
        wall_s=wall,
        instances_per_s=sum(r.instances for r in ok) / wall,
        mb_per_s=sum(r.sent for r in results) / wall / MB,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        max_ms=max(latencies),
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        other_cpu_s=max(0.0, machine_cpu - server_cpu - client_cpu),
        errors=errors[:10],
    )


# --- the 1 GiB instance -------------------------------------------------------------------


def frame_marker(number: int) -> bytes:
    """The first 4 bytes of frame ``number`` (1-based) of a benchmark instance (12-bit values)."""
    return struct.pack("<I", (number - 1) & 0x0FFF0FFF)


def write_big_instance(
    path: Path,
    factory: InstanceFactory,
    frames: int,
    rows: int = 1024,
    columns: int = 1024,
    *,
    uid_number: int = 999_999_999,
    label: str = "STOW",
) -> tuple[int, str, str, str]:
    """Write a native multi-frame instance of ``frames`` rows x columns 16-bit frames to ``path``.

    The header is written by pydicom without pixel data; then (7FE0,0010) OW with its
    explicit 4-byte length, then the frames, so a GiB-sized file never sits in memory. Frame
    *n* starts with ``frame_marker(n)``, so a retrieved frame can be checked. Returns the
    file size and the study, series and SOP Instance UIDs.
    """
    from tests.factories import make_dataset, to_part10

    study_uid, series_uid, sop_uid = (factory.uid(kind, uid_number) for kind in (1, 2, 3))
    ds = make_dataset(
        study_uid=study_uid,
        series_uid=series_uid,
        instance_uid=sop_uid,
        rows=rows,
        columns=columns,
        patient_id="BENCH-1",
        patient_name=f"Bench^{label.title()}",
        StudyDescription=f"{label} benchmark (large multi-frame)",
    )
    frame = bytearray(ds.PixelData)
    del ds.PixelData
    ds.NumberOfFrames = frames
    header = to_part10(ds)
    pixel_bytes = len(frame) * frames
    if pixel_bytes >= 0xFFFFFFFF:
        raise BenchError(f"{frames} frames do not fit in one explicit-length element")
    with path.open("wb") as out:
        out.write(header)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
        for index in range(frames):
            frame[:4] = frame_marker(index + 1)
            out.write(frame)
    return len(header) + 12 + pixel_bytes, study_uid, series_uid, sop_uid


def _stream_file(path: Path, boundary: str, sent: list[float]) -> Iterator[bytes]:
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()
    sent.append(time.monotonic())


def _referenced_uids(document: Any) -> list[str]:
    items = (document or {}).get("00081199", {}).get("Value", [])
    return [uid for item in items for uid in item.get("00081155", {}).get("Value", [])]


def store_big_instance(server: Server, path: Path, sop_uid: str) -> dict[str, Any]:
    """Stream ``path`` in one chunked STOW request while sampling the server's RSS."""
    boundary = uuid.uuid4().hex
    sent: list[float] = []
    size = path.stat().st_size
    time.sleep(0.5)  # let the previous phase's garbage settle before the baseline
    with RssSampler(server.process.pid, interval=0.05) as sampler:
        started = time.monotonic()
        try:
            with httpx.Client(timeout=BIG_TIMEOUT) as client:
                response = client.post(
                    f"{server.base_url}/studies",
                    content=_stream_file(path, boundary, sent),
                    headers={
                        **server.auth_headers,
                        "Accept": DICOM_JSON,
                        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                    },
                )
            status, text = response.status_code, response.text
        except httpx.HTTPError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        ended = time.monotonic()
        time.sleep(0.2)  # catch a late peak (response already sent, request objects freed)
    try:
        referenced = _referenced_uids(json.loads(text)) if status in (200, 202) else []
    except ValueError:
        referenced = []
    return {
        "bytes": size,
        "status": status,
        "wall_s": ended - started,
        "upload_s": (sent[0] - started) if sent else None,
        "after_upload_s": (ended - sent[0]) if sent else None,
        "mb_per_s": size / (ended - started) / MB,
        "verified": sop_uid in referenced,
        "rss_baseline_mb": sampler.baseline_kb / 1024,
        "rss_peak_mb": sampler.peak_kb / 1024,
        "rss_peak_growth_mb": sampler.peak_growth_kb / 1024,
        "rss_peak_process_growth_mb": sampler.peak_process_growth_kb / 1024,
        "rss_samples": len(sampler.samples),
        "error": "" if status == 200 else text[:2000],
    }


# --- verification and profile -------------------------------------------------------------


def stored_counts(server: Server) -> dict[str, int]:
    """Instances in the index and blob files on disk (read directly, after the load)."""
    counts = {"indexed": -1, "blobs": 0}
    try:
        with sqlite3.connect(f"file:{server.var_dir / 'archway.sqlite3'}?mode=ro", uri=True) as db:
            counts["indexed"] = int(db.execute("SELECT COUNT(*) FROM archive_instance").fetchone()[0])
    except sqlite3.Error as exc:
        print(f"  (could not count indexed instances: {exc})", file=sys.stderr)
    for _root, _dirs, files in os.walk(server.var_dir / "blobs"):
        counts["blobs"] += sum(1 for name in files if name.endswith(".dcm"))
    return counts


def summarise_profile(path: Path, top: int = 25) -> str:
    """Top cumulative entries in project code, then top self-time entries overall."""
    import io

    from bench.common import PROJECT_ROOT

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative")
    project = "|".join(
        str(PROJECT_ROOT / package) for package in ("archive", "dicomweb", "config", "rendering", "workitems")
    )
    out.write("== cumulative time, Archway code ==\n")
    stats.print_stats(project, top)
    out.write("\n== self time, everything ==\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- entry points -------------------------------------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    """Options of this benchmark (``python -m bench.run stow --help``)."""
    parser.add_argument(
        "--stow-count", type=int, default=600, help="instances per throughput row (default 600)"
    )
    parser.add_argument(
        "--stow-max-seconds", type=float, default=30.0, help="cap on each throughput row (default 30)"
    )
    parser.add_argument(
        "--stow-client-mode",
        choices=("process", "thread"),
        default="process",
        help="concurrent clients as processes (default) or threads of this process",
    )
    parser.add_argument(
        "--stow-big-frames",
        type=int,
        default=512,
        help="frames of 2 MiB in the large instance (default 512 = 1 GiB; 0 skips it)",
    )
    parser.add_argument(
        "--stow-reference",
        action="store_true",
        help="also run every row against a local Orthanc + DICOMweb plugin (apt-get install orthanc "
        "orthanc-dicomweb), alternating with Archway row by row",
    )
    parser.add_argument(
        "--stow-rounds",
        type=int,
        default=1,
        help="run the throughput rows this many times (alternating with the reference) and report "
        "each row's median (default 1)",
    )
    parser.add_argument(
        "--stow-profile",
        action="store_true",
        help="also run a short load against one cProfiled worker and print where server time goes",
    )


ROWS = ((1, 1), (4, 1), (1, 10), (4, 10))  # (clients, instances per request)


def _print_header(server: Server, facts: dict[str, Any], instance_bytes: int, mode: str) -> None:
    versions = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    print(
        f"STOW-RS  server: uvicorn --workers {server.workers}, embedded profile "
        "(SQLite + filesystem blobs, ARCHWAY_FSYNC on), token via "
        f"{server.token_source}\n"
        f"machine: nproc {facts['nproc']} ({facts['cpu_model'] or 'unknown CPU'}), "
        f"{facts['mem_total_mb'] / 1024:.0f} GiB RAM, Python {facts['python']}; {versions}; "
        f"load average before the run {facts['load_average']}\n"
        f"NOTE: client and server share this machine; client CPU is taken from the server's budget.\n"
        f"instance: 512x512 16-bit CT, {instance_bytes:,} bytes Part 10; clients: {mode}-based, "
        "one keep-alive connection each"
    )


def _phase_rows(phases: Sequence[PhaseResult]) -> str:
    headers = (
        "clients",
        "inst/req",
        "requests",
        "inst/s",
        "MB/s",
        "p50 ms",
        "p95 ms",
        "max ms",
        "non-200",
        "srv CPU ms/inst",
        "srv cores",
        "client cores",
        "other cores",
    )
    rows = [
        (
            p.clients,
            p.per_request,
            p.requests,
            p.instances_per_s,
            p.mb_per_s,
            p.p50_ms,
            p.p95_ms,
            p.max_ms,
            p.non_200,
            p.server_cpu_ms_per_instance,
            p.server_cpu_s / p.wall_s,
            p.client_cpu_s / p.wall_s,
            p.other_cpu_s / p.wall_s,
        )
        for p in phases
    ]
    return format_table(headers, rows)


def _run_profile(factory: InstanceFactory, count: int, mode: str, max_seconds: float) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_path = RESULTS_DIR / f"stow-profile-{stamp}.pstats"
    print(f"\nprofile: one cProfiled worker, 4 clients x 1 instance/request, {count} instances")
    bodies = build_bodies(factory, 5_000_000, count, 1)
    with archway_server(profile_out=profile_path) as server:
        build_warmup = build_bodies(factory, 6_000_000, 4, 1)
        run_load(server, build_warmup, 2, "thread", 30)
        phase = measure_phase(server, bodies, 4, 1, mode, max_seconds)
    print(_phase_rows([phase]))
    if not profile_path.exists():
        print(f"  no profile was written (server log lost with its temp dir); expected {profile_path}")
        return {"phase": asdict(phase)}
    print(summarise_profile(profile_path))
    print(f"profile stats: {profile_path}")
    return {"phase": asdict(phase), "pstats": str(profile_path)}


def _median_phase(row: list[PhaseResult]) -> PhaseResult:
    """The round whose throughput is the median of the row (the lower middle for even counts)."""
    ordered = sorted(row, key=lambda phase: phase.instances_per_s)
    return ordered[(len(ordered) - 1) // 2]


@contextlib.contextmanager
def _reference(wanted: bool) -> Iterator[tuple[Server | None, str]]:
    """The reference server (Orthanc) and its version, or (None, why not)."""
    if not wanted:
        yield None, ""
        return
    from bench.reference import orthanc_available, orthanc_server, orthanc_version

    binary, plugin = orthanc_available()
    if binary is None or plugin is None:
        print("reference: Orthanc is not installed (apt-get install orthanc orthanc-dicomweb); skipped")
        yield None, "not installed"
        return
    with orthanc_server() as server:
        yield server, orthanc_version(binary)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the STOW benchmark, print its figures, return them for the JSON results file."""
    count: int = args.stow_count
    mode: str = args.stow_client_mode
    max_seconds: float = args.stow_max_seconds
    workers: int = args.workers
    facts = machine_facts()
    factory = InstanceFactory()
    instance_bytes = len(factory.template)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": facts,
        "workers": workers,
        "client_mode": mode,
        "instance_bytes": instance_bytes,
        "count_per_row": count,
        "rows": [],
    }
    rounds = max(1, args.stow_rounds)
    with archway_server(workers=workers) as server, _reference(args.stow_reference) as (reference, version):
        if reference is not None:
            result["reference"] = {"server": "Orthanc + DICOMweb plugin", "version": version}
        _print_header(server, facts, instance_bytes, mode)
        # Warm-up: every worker imports and initialises everything once, off the clock.
        warmup = measure_phase(server, build_bodies(factory, 4_000_000, 16, 1), 4, 1, "thread", 60)
        if warmup.non_200:
            raise BenchError("warm-up requests failed:\n  " + "\n  ".join(warmup.errors[:5]))
        if reference is not None:
            print(f"reference: {version} with its DICOMweb plugin, same rows, alternating with Archway")
            measure_phase(reference, build_bodies(factory, 4_500_000, 16, 1), 4, 1, "thread", 60)
        runs: dict[str, list[list[PhaseResult]]] = {
            name: [[] for _ in ROWS] for name in ("archway", "reference")
        }
        next_number = 0
        print(f"\nthroughput: {count} instances per row (capped at {max_seconds:.0f} s), {rounds} round(s)")
        for round_number in range(rounds):
            for index, (clients, per_request) in enumerate(ROWS):
                targets: list[tuple[str, Server]] = [("archway", server)]
                if reference is not None:
                    targets.append(("reference", reference))
                if round_number % 2:
                    targets.reverse()  # neither side always goes first
                for name, target in targets:
                    bodies = build_bodies(factory, next_number, count, per_request)
                    next_number += count
                    phase = measure_phase(target, bodies, clients, per_request, mode, max_seconds)
                    del bodies
                    runs[name][index].append(phase)
                    print(
                        f"  {name:9s} {clients} client(s) x {per_request} instance(s)/request: "
                        f"{phase.instances_per_s:.0f} instances/s, {phase.non_200} non-200",
                        flush=True,
                    )
                    for error in phase.errors[:5]:
                        print(f"    ! {error[:500]}")
        phases = [_median_phase(row) for row in runs["archway"]]
        print(("\narchway (median of each row)\n" if rounds > 1 or reference else "") + _phase_rows(phases))
        result["rows"] = [
            {**asdict(p), "server_cpu_ms_per_instance": p.server_cpu_ms_per_instance} for p in phases
        ]
        result["rounds"] = {
            name: [[asdict(p) for p in row] for row in rows] for name, rows in runs.items() if any(rows)
        }
        if reference is not None:
            ref_phases = [_median_phase(row) for row in runs["reference"]]
            print(f"\nreference: {version} (median of each row)\n" + _phase_rows(ref_phases))
            result["reference"]["rows"] = [
                {**asdict(p), "server_cpu_ms_per_instance": p.server_cpu_ms_per_instance} for p in ref_phases
            ]
            print(
                "\narchway / reference, instances/s: "
                + ", ".join(
                    f"{c}x{n} {a.instances_per_s / r.instances_per_s:.2f}"
                    for (c, n), a, r in zip(ROWS, phases, ref_phases, strict=True)
                    if r.instances_per_s
                )
            )
        result["server_rss_mb_after_throughput"] = server.rss_mb()

        if args.stow_big_frames > 0:
            big_path = server.workdir / "big.dcm"
            generated = time.monotonic()
            size, _, _, sop_uid = write_big_instance(big_path, factory, args.stow_big_frames)
            generated = time.monotonic() - generated
            print(
                f"\nlarge instance: {args.stow_big_frames} frames 1024x1024 16-bit, {size / 2**30:.2f} GiB "
                f"({size:,} bytes; generated in {generated:.1f} s), chunked upload streamed from disk"
            )
            big = store_big_instance(server, big_path, sop_uid)
            big_path.unlink(missing_ok=True)
            result["big_instance"] = big
            upload = f"{big['upload_s']:.1f}" if big["upload_s"] is not None else "?"
            after = f"{big['after_upload_s']:.1f}" if big["after_upload_s"] is not None else "?"
            print(
                f"  status {big['status']}, wall {big['wall_s']:.1f} s ({big['mb_per_s']:.0f} MB/s; "
                f"body sent after {upload} s, answer {after} s later), "
                f"verified: {'yes' if big['verified'] else 'NO'}\n"
                f"  server RSS: baseline {big['rss_baseline_mb']:.0f} MB, peak {big['rss_peak_mb']:.0f} MB, "
                f"peak growth {big['rss_peak_growth_mb']:.1f} MB "
                f"(largest single process +{big['rss_peak_process_growth_mb']:.1f} MB; "
                f"{big['rss_samples']} samples)"
            )
            if big["error"]:
                print(f"    ! {big['error'][:1000]}")

        counts = stored_counts(server)
        expected = sum(p.instances_ok for row in runs["archway"] for p in row) + warmup.instances_ok
        if args.stow_big_frames > 0 and result["big_instance"]["status"] == 200:
            expected += 1
        result["stored"] = {**counts, "expected": expected}
        print(
            f"\nstored: {counts['indexed']} instances indexed, {counts['blobs']} blobs on disk "
            f"(expected {expected}, warm-up included)"
        )
    if args.stow_profile:
        result["profile"] = _run_profile(factory, min(count, 300), mode, max_seconds)
    return result
