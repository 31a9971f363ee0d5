"""QIDO-RS benchmark: search latency at 2,000 / 20,000 / 200,000 studies on PostgreSQL.

A scratch database (``archway_bench_qido``, created and dropped here on the server of
``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``) is migrated
and grown with ``manage.py seed_index`` (2k, then +18k, then +180k studies; 3 series x 3
instances each, no blobs). At each scale a throw-away server (``bench.common.archway_server``
with ``DATABASE_URL`` pointing at the scratch database) answers the representative
queries, each ~50 times over HTTP with varied values (PatientIDs, names, months and
study UIDs sampled from the database) after a short warm-up. Reported per query and
scale: p50 / p95 / max latency, non-200 answers, plus the seeding time.

Figures only, nothing asserted. Targets (issue 4): p95 < 20 ms at 20k, < 50 ms at 200k,
p95 at 200k <= 2x p95 at 2k.
"""

from __future__ import annotations

import argparse
import calendar
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
    machine_facts,
    percentile,
    server_env,
)

NAME = "qido"
DB_NAME = "archway_bench_qido"
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


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--qido-scales",
        "--scales",
        dest="qido_scales",
        default=",".join(str(s) for s in SCALES),
        help="comma-separated study counts, ascending (default 2000,20000,200000)",
    )
    group.add_argument("--qido-repeats", type=int, default=50, help="timed requests per query and scale")
    group.add_argument("--qido-warmup", type=int, default=5, help="untimed requests per query first")
    group.add_argument(
        "--qido-keep-db", action="store_true", help=f"keep the scratch database {DB_NAME} (for EXPLAIN)"
    )


# --- the scratch database ------------------------------------------------------------------


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


# --- queries ---------------------------------------------------------------------------------


def _samples(url: str, rng: random.Random) -> dict[str, list]:
    """Values that exist at this scale, to vary every query."""
    patient_ids = [
        r[0] for r in _fetch(url, "SELECT patient_id FROM archive_patient ORDER BY random() LIMIT 200")
    ]
    names = [
        r[0] for r in _fetch(url, "SELECT patient_name_norm FROM archive_study ORDER BY random() LIMIT 200")
    ]
    study_uids = [
        r[0] for r in _fetch(url, "SELECT study_uid FROM archive_study ORDER BY random() LIMIT 200")
    ]
    rng.shuffle(names)
    return {"patient_ids": patient_ids, "names": names, "study_uids": study_uids}


def _query_makers(samples: dict[str, list], rng: random.Random) -> dict[str, Callable[[], tuple[str, dict]]]:
    def family_given(name: str) -> tuple[str, str]:
        family, _, rest = name.partition("^")
        return family, rest.split("^")[0] or family

    def patient_id():
        return "/studies", {"PatientID": rng.choice(samples["patient_ids"]).lower()}

    def name_prefix():  # "doe*"-style
        family, _ = family_given(rng.choice(samples["names"]))
        return "/studies", {"PatientName": family[:3].lower() + "*"}

    def name_fuzzy():  # "jo do"-style
        family, given = family_given(rng.choice(samples["names"]))
        return "/studies", {
            "PatientName": f"{given[:2].lower()} {family[:2].lower()}",
            "fuzzymatching": "true",
        }

    def date_month():
        year, month = rng.randrange(2016, 2026), rng.randrange(1, 13)
        last = calendar.monthrange(year, month)[1]
        return "/studies", {"StudyDate": f"{year}{month:02d}01-{year}{month:02d}{last:02d}"}

    def series_modality():
        return "/series", {"Modality": rng.choice(("MR", "CT", "CR", "US"))}

    def paging_1000():
        return "/studies", {"limit": "100", "offset": "1000"}

    def instances():
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


def _measure(client: httpx.Client, base: str, make, repeats: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        path, params = make()
        client.get(base + path, params=params)
    latencies, statuses, results = [], {}, []
    for _ in range(repeats):
        path, params = make()
        started = time.perf_counter()
        response = client.get(base + path, params=params)
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        results.append(len(response.json()) if response.status_code == 200 else 0)
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
        "statuses": statuses,
        "mean_results": sum(results) / len(results),
        "latencies_ms": latencies,
    }


# --- run -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    scales = sorted(int(s) for s in str(args.qido_scales).split(",") if s.strip())
    try:
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
        _admin(f"CREATE DATABASE {DB_NAME}")
    except Exception as exc:  # psycopg missing, server down, no permission
        print(f"qido: skipped — PostgreSQL is unreachable at {_server_url()}: {exc}", file=sys.stderr)
        return {"skipped": f"PostgreSQL unreachable: {exc}"}
    db_url = _with_db(_server_url(), DB_NAME)
    rng = random.Random(4)
    out: dict[str, Any] = {"machine": machine_facts(), "database": db_url, "scales": {}}
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="archway-bench-qido-") as tmp:
            var_dir = Path(tmp) / "var"
            (var_dir / "static").mkdir(parents=True)
            env = {**server_env(var_dir), "DATABASE_URL": db_url}
            _manage(env, "migrate", "--noinput")
            seeded = 0
            for scale in scales:
                started = time.monotonic()
                _manage(env, "seed_index", "--studies", str(scale - seeded))
                seed_s = time.monotonic() - started
                print(f"\nqido: seeded {scale - seeded} studies in {seed_s:.1f} s (now {scale})", flush=True)
                seeded = scale
                # What autovacuum does after a bulk load (PostgreSQL >= 13 vacuums
                # insert-only tables too): statistics, and the visibility map that lets
                # the fuzzy-name word scans run index-only instead of visiting the heap.
                _admin_on(db_url, "VACUUM ANALYZE")
                samples = _samples(db_url, rng)
                makers = _query_makers(samples, rng)
                figures: dict[str, Any] = {"seed_s": seed_s}
                extra = {"DATABASE_URL": db_url}
                with archway_server(workers=args.workers, extra_env=extra) as server:
                    headers = {**server.auth_headers, "Accept": DICOM_JSON}
                    with httpx.Client(headers=headers, timeout=60) as client:
                        for name, make in makers.items():
                            result = _measure(
                                client, server.base_url, make, args.qido_repeats, args.qido_warmup
                            )
                            figures[name] = result
                            non200 = sum(
                                n for code, n in result["statuses"].items() if code not in (200, 204)
                            )
                            rows.append(
                                [scale, name, args.qido_repeats, result["p50_ms"], result["p95_ms"],
                                 result["max_ms"], result["mean_results"], non200]
                            )  # fmt: skip
                out["scales"][str(scale)] = figures
    finally:
        if not args.qido_keep_db:
            try:
                _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
            except Exception as exc:
                print(f"qido: could not drop {DB_NAME}: {exc}", file=sys.stderr)
    headers = ["studies", "query", "n", "p50 ms", "p95 ms", "max ms", "results", "non-2xx"]
    print("\n" + format_table(headers, rows))
    print("\nseeding: " + ", ".join(f"{s} studies {out['scales'][s]['seed_s']:.1f} s" for s in out["scales"]))
    out["table"] = {"headers": headers, "rows": rows}
    return out
