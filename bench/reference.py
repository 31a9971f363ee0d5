"""A reference archive for the benchmarks: Orthanc with its DICOMweb plugin, run locally.

The STOW target of issue 2 is "what Orthanc 1.10 with its DICOMweb plugin, from Debian,
reaches here with the same load". A figure measured an hour earlier is no reference on
a VM whose speed drifts by a factor of two or more over minutes (seen on the dev VM:
the same Archway row at 148 and at 271 instances/s within 10 minutes), so the benchmark
can run the reference *in the same run*, row by row, alternating with Archway
(``--stow-reference``). Orthanc is not a dependency of Archway: install it with
``apt-get install orthanc orthanc-dicomweb`` (Debian/Ubuntu) to get this comparison.

Orthanc runs with what matters for a fair comparison spelled out: its SQLite index and
filesystem storage in a fresh temporary directory (like Archway's embedded profile),
no storage compression, authentication off (Archway checks a token: a little more work
on its side), and its defaults otherwise — which include ``SyncStorageArea: true``,
i.e. fsync of every stored file, as Archway does.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import BenchError, Server, free_port, start_logged, stop_server

ORTHANC = "Orthanc"
DICOMWEB_PLUGIN_PATHS = (
    Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    Path("/usr/lib/orthanc/plugins/libOrthancDicomWeb.so"),
)


def orthanc_available() -> tuple[Path | None, Path | None]:
    """The Orthanc binary and its DICOMweb plugin, where installed."""
    binary = shutil.which(ORTHANC)
    plugin = next((path for path in DICOMWEB_PLUGIN_PATHS if path.exists()), None)
    return (Path(binary) if binary else None), plugin


def orthanc_version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].strip() if first else "unknown version"


@contextlib.contextmanager
def orthanc_server(start_timeout: float = 60.0) -> Iterator[Server]:
    """Start Orthanc + DICOMweb on a free loopback port in a temp dir; always clean up.

    The returned ``Server``'s ``base_url`` is the DICOMweb root, so the benchmark's
    clients post to ``{base_url}/studies`` exactly as they do to Archway.
    """
    binary, plugin = orthanc_available()
    if binary is None or plugin is None:
        raise BenchError(
            "Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="orthanc-bench-"))
    port = free_port()
    config = {
        "Name": "archway-bench-reference",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "storage"),
        "HttpPort": port,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageCompression": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicomweb/"},
    }
    (workdir / "orthanc.json").write_text(json.dumps(config, indent=2))
    process = start_logged([str(binary), str(workdir / "orthanc.json")], workdir)
    server = Server(process=process, port=port, workers=1, workdir=workdir, token="none")
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise BenchError(f"Orthanc exited with status {process.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/system", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"Orthanc did not answer within {start_timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
