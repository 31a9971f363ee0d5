"""Helpers shared by the benchmarks: a throw-away server, its token, process sampling, output.

Every benchmark talks to a *real* Archway server started the way production starts it
(``migrate`` then ``uvicorn config.asgi:application --workers N``), against a fresh
temporary ``ARCHWAY_VAR_DIR`` (embedded profile: SQLite + filesystem blobs), so the
figures include the HTTP stack, the ASGI body spooling, auth, fsync and SQLite commits.

Nothing here imports Django: the benchmark client must not pay for (or be influenced by)
the application's settings; the server runs in its own processes.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCH_USERNAME = "bench"
MB = 1_000_000  # figures use decimal megabytes (MB/s as network tools print them)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TOKEN_RE = re.compile(r"\b[0-9a-f]{40}\b")


class BenchError(RuntimeError):
    """A benchmark could not run (server did not start, setup failed…); the message says why."""


# --- machine ------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: CPUs, memory, Python, library versions."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_mb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_mb = int(line.split()[1]) // 1024
                break
    versions: dict[str, str] = {}
    for dist in ("django", "uvicorn", "pydicom", "httpx", "uvloop", "httptools"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    return {
        "load_average": load_average(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_mb": mem_total_mb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /proc sampling -----------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and all its live descendants (uvicorn master, workers, helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def rss_kb(pid: int) -> int:
    """Resident set size of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by these processes."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / _CLOCK_TICKS


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (all processes, all cores) since boot.

    Compared with the server's and the client's own CPU time over a run, it shows how much
    *other* work (a test suite, another benchmark) competed with the measurement.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    values = [int(value) for value in fields[1:9]]
    return (sum(values) - values[3] - values[4]) / _CLOCK_TICKS


def load_average() -> str:
    """The 1/5/15-minute load averages, as /proc/loadavg prints them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass
class RssSample:
    at: float
    per_pid_kb: dict[int, int]

    @property
    def total_kb(self) -> int:
        return sum(self.per_pid_kb.values())


class RssSampler:
    """Samples the RSS of a process tree every ``interval`` seconds in a background thread.

    Use as a context manager; ``samples[0]`` is taken synchronously on entry, so it is the
    baseline. Processes are rediscovered at each sample (workers may be respawned).
    """

    def __init__(self, root_pid: int, interval: float = 0.05) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.samples: list[RssSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> RssSample:
        pids = descendants(self.root_pid)
        sample = RssSample(time.perf_counter(), {pid: rss_kb(pid) for pid in pids})
        self.samples.append(sample)
        return sample

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    @property
    def baseline_kb(self) -> int:
        return self.samples[0].total_kb

    @property
    def peak_kb(self) -> int:
        return max(sample.total_kb for sample in self.samples)

    @property
    def peak_growth_kb(self) -> int:
        """Largest rise of the summed RSS over the baseline."""
        return self.peak_kb - self.baseline_kb

    @property
    def peak_process_growth_kb(self) -> int:
        """Largest rise of any one process's RSS over its own first sample."""
        first: dict[int, int] = {}
        growth = 0
        for sample in self.samples:
            for pid, kb in sample.per_pid_kb.items():
                first.setdefault(pid, kb)
                growth = max(growth, kb - first[pid])
        return growth


# --- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    """A running throw-away Archway server."""

    process: subprocess.Popen[bytes]
    port: int
    workers: int
    workdir: Path  # temp dir: var/ (ARCHWAY_VAR_DIR), server.log, anything the benchmark writes
    token: str = ""
    token_source: str = ""
    profile_out: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicomweb"

    @property
    def var_dir(self) -> Path:
        return self.workdir / "var"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pids(self) -> list[int]:
        return descendants(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def rss_mb(self) -> float:
        return sum(rss_kb(pid) for pid in self.pids()) / 1024

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def server_env(var_dir: Path) -> dict[str, str]:
    """The environment of the server and its manage.py commands: embedded profile, quiet logs.

    Inherited ``ARCHWAY_*``/``DATABASE_URL``/``CELERY_*`` settings are dropped so that a
    developer's shell cannot point the benchmark at a real database or bucket.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ARCHWAY_", "DATABASE_", "CELERY_", "SECRET_KEY"))
        and key not in {"DEBUG", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE", "FILE_UPLOAD_TEMP_DIR"}
    }
    env.update(
        ARCHWAY_VAR_DIR=str(var_dir),
        SECRET_KEY="bench",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", *args]
    try:
        result = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`manage.py {' '.join(args[:2])}` did not finish within {timeout:.0f} s") from exc
    return result


_TOKEN_SNIPPET = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
user, _ = get_user_model().objects.get_or_create(username={BENCH_USERNAME!r})
user.groups.add(Group.objects.get(name="read"), Group.objects.get(name="write"))
token, _ = Token.objects.get_or_create(user=user)
print("BENCH_TOKEN=" + token.key)
"""


def issue_token(env: dict[str, str]) -> tuple[str, str]:
    """A token for a user with the read and write roles; returns ``(key, how it was made)``.

    Uses ``manage.py issue_token`` when the project has it, else a ``shell -c`` snippet.
    """
    command_file = PROJECT_ROOT / "archive" / "management" / "commands" / "issue_token.py"
    notes = ""
    if command_file.exists():
        result = _manage(
            env, "issue_token", BENCH_USERNAME, "--create-user", "--groups", "read,write", timeout=60
        )
        match = _TOKEN_RE.search(result.stdout)
        if result.returncode == 0 and match:
            return match.group(0), "manage.py issue_token"
        notes = f" (issue_token failed with exit {result.returncode}: {result.stderr.strip()[-300:]})"
    result = _manage(env, "shell", "-c", _TOKEN_SNIPPET, timeout=60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_TOKEN="):
            return line.removeprefix("BENCH_TOKEN=").strip(), "manage.py shell -c" + notes
    raise BenchError(
        f"could not create the benchmark token (exit {result.returncode}){notes}:\n{result.stderr[-2000:]}"
    )


def _server_command(port: int, workers: int, profile_out: Path | None) -> list[str]:
    if profile_out is not None:
        return [sys.executable, "-m", "bench.profile_server", "--port", str(port), "--out", str(profile_out)]
    uvicorn = Path(sys.executable).with_name("uvicorn")
    launcher = [str(uvicorn)] if uvicorn.exists() else [sys.executable, "-m", "uvicorn"]
    return [
        *launcher,
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _wait_until_up(server: Server, timeout: float) -> None:
    """Poll until every request answers (any HTTP status); raise with the log if it dies."""
    deadline = time.monotonic() + timeout
    answered = 0
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise BenchError(
                    f"the server exited with status {server.process.returncode} while starting:\n"
                    + server.log_tail()
                )
            try:
                client.get(f"{server.base_url}/studies", headers={"Connection": "close"})
                answered += 1
                if answered >= 2 * server.workers:  # give every worker a chance to be up
                    return
            except httpx.TransportError:
                answered = 0
            time.sleep(0.1)
    raise BenchError(f"the server did not answer within {timeout:.0f} s:\n" + server.log_tail())


def _check_token(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/studies", headers=server.auth_headers, timeout=10)
    if response.status_code in (401, 403):
        raise BenchError(f"the benchmark token is refused ({response.status_code}): {response.text[:300]}")


def stop_server(server: Server, grace: float = 20.0) -> None:
    """SIGTERM the uvicorn master (it stops its workers), then SIGKILL its process group."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(f"  server did not stop within {grace:.0f} s of SIGTERM; killing it", file=sys.stderr)
    # The server was started in its own session: its group holds only processes we started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def start_logged(
    command: Sequence[str], workdir: Path, *, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process in its own session, its output in ``workdir/server.log``.

    Its own session, so ``stop_server`` can kill the whole process group.
    """
    log = (workdir / "server.log").open("wb")
    try:
        return subprocess.Popen(
            list(command),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


@contextlib.contextmanager
def archway_server(
    *,
    workers: int = 2,
    profile_out: Path | None = None,
    extra_env: dict[str, str] | None = None,
    start_timeout: float = 60.0,
) -> Iterator[Server]:
    """Migrate a fresh temporary var dir, make a read+write token, serve; always clean up.

    With ``profile_out`` the server runs as one in-process worker under cProfile
    (``bench/profile_server.py``) and writes its stats there on shutdown. ``extra_env``
    overrides settings (e.g. ``{"ARCHWAY_FSYNC": "false"}`` to measure what fsync costs).
    """
    workdir = Path(tempfile.mkdtemp(prefix="archway-bench-"))
    var_dir = workdir / "var"
    (var_dir / "static").mkdir(parents=True)  # STATIC_ROOT: silences WhiteNoise's warning
    env = {**server_env(var_dir), **(extra_env or {})}
    server: Server | None = None
    try:
        result = _manage(env, "migrate", "--noinput")
        if result.returncode != 0:
            raise BenchError(f"migrate failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
        token, token_source = issue_token(env)
        port = free_port()
        if profile_out is not None:
            workers = 1
        process = start_logged(_server_command(port, workers, profile_out), workdir, env=env)
        server = Server(
            process=process,
            port=port,
            workers=workers,
            workdir=workdir,
            token=token,
            token_source=token_source,
            profile_out=profile_out,
            env=env,
        )
        _wait_until_up(server, start_timeout)
        _check_token(server)
        yield server
    finally:
        if server is not None:
            stop_server(server)
            errors = [
                line
                for line in server.log_tail(400).splitlines()
                if "ERROR" in line or "Traceback" in line or "CRITICAL" in line
            ]
            if errors:
                print("  server log had errors:\n    " + "\n    ".join(errors[:20]), file=sys.stderr)
            if profile_out is not None and not profile_out.exists():
                print(f"  the profiled server wrote no stats; its log:\n{server.log_tail()}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


# --- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) if rows else False for i in range(len(headers))
    ]
    lines = []
    for index, row in enumerate(cells):
        parts = [cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>-<UTC timestamp>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def run_forked_clients(
    target: Callable[..., None], clients: int, *, head: tuple, tail: tuple, report_timeout: float
) -> tuple[list[dict[str, Any]], float]:
    """Run ``clients`` forked load-generator processes; ``(result rows, client CPU s)``.

    Each process runs ``target(*head, barrier, queue, *tail)``: it waits on the barrier (so
    all start together), does its work and puts ``(rows, cpu_seconds, error_text)`` on the
    queue. Processes, not threads, so a busy client never holds the GIL against another.
    Shared state the target needs (counters, bodies) must come from
    ``multiprocessing.get_context("fork")`` before this call.
    """
    context = mp.get_context("fork")
    barrier = context.Barrier(clients + 1)
    queue = context.Queue()
    processes = [
        context.Process(target=target, args=(*head, barrier, queue, *tail), daemon=True)
        for _ in range(clients)
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(timeout=60)
        rows: list[dict[str, Any]] = []
        client_cpu = 0.0
        for _ in processes:
            try:
                batch, cpu, error = queue.get(timeout=report_timeout)
            except Exception as exc:
                raise BenchError("a client process did not report in time") from exc
            if error:
                raise BenchError(f"a client process failed: {error}")
            rows += batch
            client_cpu += cpu
        return rows, client_cpu
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
