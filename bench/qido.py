"""QIDO-RS benchmark: search latency at 2,000 / 20,000 / 200,000 studies on PostgreSQL.

Each scale has its own scratch database (``archway_bench_qido_<studies>``, created and
dropped here on the server of ``DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/postgres``), migrated and filled with
``manage.py seed_index --studies N`` (3 series x 3 instances each, no blobs), and its own
throw-away server (``bench.common.archway_server``); all of them run at once. The timed
requests of a query alternate between the scales round by round (one request per scale
per round, the order rotating), so a drift of the machine's speed during the run hits
every scale alike; the comparison between scales is what the figures are for. Reported
per query and scale: p50 / p95 / max latency, non-200 answers, mean results; per query
the ratio of the largest scale's p50 and p95 to the smallest's; the seeding times.

Figures only, nothing asserted. Targets (issue 4): p95 < 20 ms at 20k, < 50 ms at 200k,
p95 at 200k <= 2x p95 at 2k.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.common import (
    PROJECT_ROOT,
    BenchError,
    archway_server,
    format_table,
    load_average,
    machine_facts,
    percentile,
    server_env,
)

NAME = "qido"
DB_PREFIX = "archway_bench_qido"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SCALES = (2_000, 20_000, 200_000)
DICOM_JSON = "application/dicom+json"
QUERIES = (
    "patient_id",
    "name_prefix",
    "name_fuzzy",
    "date_month",
    "series_modality",
    "paging_1000",
    "instances",
)


def db_name(scale: int) -> str:
    return f"{DB_PREFIX}_{scale}"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--qido-scales",
        "--scales",
        dest="qido_scales",
        default=",".join(str(s) for s in SCALES),
        help="comma-separated study counts (default 2000,20000,200000)",
    )
    group.add_argument(
        "--qido-repeats", type=int, default=50, help="timed requests per query and scale (rounds)"
    )
    group.add_argument(
        "--qido-warmup", type=int, default=5, help="untimed requests per query and scale first"
    )
    group.add_argument(
        "--qido-keep-db",
        action="store_true",
        help=f"keep the scratch databases {DB_PREFIX}_<studies> (for EXPLAIN, or --qido-reuse-db)",
    )
    group.add_argument(
        "--qido-explain",
        action="store_true",
        help="also EXPLAIN (ANALYZE, BUFFERS) each query at each scale: buffers, rows read, planning "
        "(bench/qido_explain.py); --qido-repeats 0 for that alone",
    )
    group.add_argument(
        "--qido-reuse-db",
        action="store_true",
        help="use a kept scratch database that holds exactly the scale's seeded studies "
        "instead of seeding a new one (it is migrated and analyzed all the same)",
    )


# --- the scratch databases -------------------------------------------------------------------


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "") or DEFAULT_SERVER_URL


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(_server_url(), "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _admin_on(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _fetch(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def _seeded_studies(url: str) -> int | None:
    """Studies in an existing scratch database, None if it does not exist or has no index."""
    try:
        return int(_fetch(url, "SELECT count(*) FROM archive_study")[0][0])
    except Exception:
        return None


def _manage(env: dict[str, str], *args: str, timeout: float = 1800) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {args[0]} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def _prepare(scale: int, var_dir: Path, reuse: bool) -> float | None:
    """Create, migrate and seed the scale's database; the seeding seconds (None: reused)."""
    url = _with_db(_server_url(), db_name(scale))
    env = {**server_env(var_dir), "DATABASE_URL": url}
    seed_s: float | None = None
    if not (reuse and _seeded_studies(url) == scale):
        _admin(f"DROP DATABASE IF EXISTS {db_name(scale)}")
        _admin(f"CREATE DATABASE {db_name(scale)}")
        _manage(env, "migrate", "--noinput")
        started = time.monotonic()
        # The same seed at every scale: the smaller databases hold the first studies of
        # the larger ones (same names, dates, UIDs), only fewer of them.
        _manage(env, "seed_index", "--studies", str(scale))
        seed_s = time.monotonic() - started
        print(f"qido: seeded {scale} studies in {seed_s:.1f} s ({db_name(scale)})", flush=True)
    else:
        _manage(env, "migrate", "--noinput")  # a kept database may predate new migrations
        print(f"qido: reusing {db_name(scale)} ({scale} studies)", flush=True)
    # What autovacuum does after a bulk load (PostgreSQL >= 13 vacuums insert-only tables
    # too): statistics, and the visibility map that lets index-only scans skip the heap.
    _admin_on(url, "VACUUM ANALYZE")
    return seed_s


# --- queries ---------------------------------------------------------------------------------


def _samples(url: str, names_url: str) -> dict[str, list]:
    """Values to vary every query: IDs and UIDs of this scale, names of the smallest scale.

    Names come from the smallest database for every scale (the larger ones hold the same
    first studies), so a round asks every scale for the same name; PatientIDs and study
    UIDs are drawn from each database's own studies (a fixed pseudo-random pick). Sorted,
    so that a seeded choice picks the same position at every scale.
    """
    patient_ids = sorted(
        r[0] for r in _fetch(url, "SELECT patient_id FROM archive_patient ORDER BY md5(patient_id) LIMIT 200")
    )
    study_uids = sorted(
        r[0] for r in _fetch(url, "SELECT study_uid FROM archive_study ORDER BY md5(study_uid) LIMIT 200")
    )
    names = sorted(
        r[0] for r in _fetch(names_url, "SELECT patient_name_norm FROM archive_study ORDER BY id LIMIT 2000")
    )
    return {"patient_ids": patient_ids, "names": names, "study_uids": study_uids}


Request = tuple[str, dict]


def _query_makers() -> dict[str, Callable[[random.Random, dict[str, list]], Request]]:
    def family_given(name: str) -> tuple[str, str]:
        family, _, rest = name.partition("^")
        return family, rest.split("^")[0] or family

    def patient_id(rng, samples):
        return "/studies", {"PatientID": rng.choice(samples["patient_ids"]).lower()}

    def name_prefix(rng, samples):  # "doe*"-style
        family, _ = family_given(rng.choice(samples["names"]))
        return "/studies", {"PatientName": family[:3].lower() + "*"}

    def name_fuzzy(rng, samples):  # "jo do"-style
        family, given = family_given(rng.choice(samples["names"]))
        return "/studies", {
            "PatientName": f"{given[:2].lower()} {family[:2].lower()}",
            "fuzzymatching": "true",
        }

    def date_month(rng, samples):
        year, month = rng.randrange(2016, 2026), rng.randrange(1, 13)
        last = calendar.monthrange(year, month)[1]
        return "/studies", {"StudyDate": f"{year}{month:02d}01-{year}{month:02d}{last:02d}"}

    def series_modality(rng, samples):
        return "/series", {"Modality": rng.choice(("MR", "CT", "CR", "US"))}

    def paging_1000(rng, samples):
        return "/studies", {"limit": "100", "offset": "1000"}

    def instances(rng, samples):
        return f"/studies/{rng.choice(samples['study_uids'])}/instances", {}

    makers = {
        "patient_id": patient_id,
        "name_prefix": name_prefix,
        "name_fuzzy": name_fuzzy,
        "date_month": date_month,
        "series_modality": series_modality,
        "paging_1000": paging_1000,
        "instances": instances,
    }
    return {name: makers[name] for name in QUERIES}


def _request(query: str, round_number: int, make, samples: dict[str, list]) -> Request:
    """The request of ``query`` in one round: the same draw at every scale."""
    return make(random.Random(f"{query}:{round_number}"), samples)


def _get(client: httpx.Client, base: str, request: Request) -> tuple[float, int, int]:
    """(latency ms, status, number of results) of one request."""
    path, params = request
    started = time.perf_counter()
    response = client.get(base + path, params=params)
    latency = (time.perf_counter() - started) * 1000
    results = len(response.json()) if response.status_code == 200 else 0
    return latency, response.status_code, results


def _figures(samples: list[tuple[float, int, int]]) -> dict[str, Any]:
    latencies = [latency for latency, _, _ in samples]
    statuses: dict[int, int] = {}
    for _, status, _ in samples:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
        "statuses": statuses,
        "mean_results": sum(results for _, _, results in samples) / len(samples),
        "latencies_ms": latencies,
    }


def _measure_interleaved(
    query: str,
    make,
    targets: dict[int, tuple[httpx.Client, str, dict[str, list]]],
    repeats: int,
    warmup: int,
) -> dict[int, dict[str, Any]]:
    """Warm every scale up, then ``repeats`` rounds of one request per scale, order rotating."""
    scales = list(targets)
    for client, base, samples in targets.values():
        for number in range(warmup):
            _get(client, base, _request(query, -1 - number, make, samples))
    timed: dict[int, list[tuple[float, int, int]]] = {scale: [] for scale in scales}
    for number in range(repeats):
        shift = number % len(scales)
        for scale in scales[shift:] + scales[:shift]:
            client, base, samples = targets[scale]
            timed[scale].append(_get(client, base, _request(query, number, make, samples)))
    return {scale: _figures(samples) for scale, samples in timed.items()}


# --- run -----------------------------------------------------------------------------------------


def _explain(scale: int, var_dir: Path, samples: dict[str, list]) -> list[dict[str, Any]]:
    """``bench.qido_explain`` on this scale's database for each query's round-0 request."""
    requests = [
        {"name": name, "path": path, "params": params}
        for name, make in _query_makers().items()
        for path, params in [_request(name, 0, make, samples)]
    ]
    env = {**server_env(var_dir), "DATABASE_URL": _with_db(_server_url(), db_name(scale))}
    result = subprocess.run(
        [sys.executable, "-m", "bench.qido_explain"],
        cwd=PROJECT_ROOT,
        env=env,
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"bench.qido_explain failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def _print_latencies(out: dict[str, Any], scales: list[int], repeats: int) -> None:
    rows = []
    for scale in scales:
        for name in QUERIES:
            result = out["scales"][str(scale)][name]
            non200 = sum(n for code, n in result["statuses"].items() if code not in (200, 204))
            rows.append(
                [scale, name, repeats, result["p50_ms"], result["p95_ms"], result["max_ms"],
                 result["mean_results"], non200]
            )  # fmt: skip
    headers = ["studies", "query", "n", "p50 ms", "p95 ms", "max ms", "results", "non-2xx"]
    print("\n" + format_table(headers, rows))
    out["table"] = {"headers": headers, "rows": rows}
    if len(scales) > 1:
        low, high = str(scales[0]), str(scales[-1])
        ratio_rows = []
        ratios: dict[str, dict[str, float]] = {}
        for name in QUERIES:
            a, b = out["scales"][low][name], out["scales"][high][name]
            ratios[name] = {"p50": b["p50_ms"] / a["p50_ms"], "p95": b["p95_ms"] / a["p95_ms"]}
            ratio_rows.append([name, a["p95_ms"], b["p95_ms"], ratios[name]["p50"], ratios[name]["p95"]])
        ratio_headers = ["query", f"p95 ms {low}", f"p95 ms {high}", f"p50 {high}/{low}", f"p95 {high}/{low}"]
        print("\n" + format_table(ratio_headers, ratio_rows))
        out["ratios"] = ratios
        out["ratio_table"] = {"headers": ratio_headers, "rows": ratio_rows}


def _print_explain(out: dict[str, Any], scales: list[int]) -> None:
    rows = []
    for name in QUERIES:
        for scale in scales:
            for figures in out["explain"][str(scale)]:
                if figures["name"] == name:
                    keys = ("statements", "planning_ms", "planning_buffers", "execution_ms", "buffers",
                            "rows_read", "results")  # fmt: skip
                    rows.append([name, scale, *(figures[key] for key in keys)])
    headers = [
        "query",
        "studies",
        "stmts",
        "plan ms",
        "plan buffers",
        "exec ms",
        "buffers",
        "rows read",
        "results",
    ]
    print("\nEXPLAIN (ANALYZE, BUFFERS), each query's round-0 request, warm (see bench/qido_explain.py):")
    print(format_table(headers, rows))
    out["explain_table"] = {"headers": headers, "rows": rows}


def run(args: argparse.Namespace) -> dict:
    scales = sorted({int(s) for s in str(args.qido_scales).split(",") if s.strip()})
    try:
        _admin("SELECT 1")
    except Exception as exc:  # psycopg missing, server down, no permission
        print(f"qido: skipped — PostgreSQL is unreachable at {_server_url()}: {exc}", file=sys.stderr)
        return {"skipped": f"PostgreSQL unreachable: {exc}"}
    out: dict[str, Any] = {
        "machine": machine_facts(),
        "databases": {str(scale): _with_db(_server_url(), db_name(scale)) for scale in scales},
        "method": "interleaved: one request per scale per round, all servers up at once",
        "scales": {str(scale): {} for scale in scales},
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="archway-bench-qido-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            var_dir = Path(tmp) / "var"
            (var_dir / "static").mkdir(parents=True)
            for scale in scales:
                out["scales"][str(scale)]["seed_s"] = _prepare(scale, var_dir, args.qido_reuse_db)
            urls = {scale: _with_db(_server_url(), db_name(scale)) for scale in scales}
            samples = {scale: _samples(urls[scale], urls[scales[0]]) for scale in scales}
            if args.qido_repeats > 0:
                targets: dict[int, tuple[httpx.Client, str, dict[str, list]]] = {}
                for scale in scales:
                    server = stack.enter_context(
                        archway_server(workers=args.workers, extra_env={"DATABASE_URL": urls[scale]})
                    )
                    headers = {**server.auth_headers, "Accept": DICOM_JSON}
                    client = stack.enter_context(httpx.Client(headers=headers, timeout=60))
                    targets[scale] = (client, server.base_url, samples[scale])
                out["load_average_before"] = load_average()
                print(
                    f"qido: {len(scales)} servers up; load average {out['load_average_before']}", flush=True
                )
                for name, make in _query_makers().items():
                    by_scale = _measure_interleaved(name, make, targets, args.qido_repeats, args.qido_warmup)
                    for scale, result in by_scale.items():
                        out["scales"][str(scale)][name] = result
                out["load_average_after"] = load_average()
            if args.qido_explain:
                stack.close()  # the servers are done: nothing else runs while EXPLAIN does
                out["explain"] = {str(scale): _explain(scale, var_dir, samples[scale]) for scale in scales}
    finally:
        if not args.qido_keep_db:
            for scale in scales:
                try:
                    _admin(f"DROP DATABASE IF EXISTS {db_name(scale)}")
                except Exception as exc:
                    print(f"qido: could not drop {db_name(scale)}: {exc}", file=sys.stderr)
    if args.qido_repeats > 0:
        _print_latencies(out, scales, args.qido_repeats)
    if args.qido_explain:
        _print_explain(out, scales)
    seeded = [
        f"{scale} studies {out['scales'][str(scale)]['seed_s']:.1f} s"
        if out["scales"][str(scale)]["seed_s"] is not None
        else f"{scale} studies reused"
        for scale in scales
    ]
    print("\nseeding: " + ", ".join(seeded))
    if args.qido_repeats > 0:
        before, after = out["load_average_before"], out["load_average_after"]
        print(f"load average before the timed requests {before}, after {after}")
    return out
