"""Run Archway's benchmarks: ``python -m bench.run [NAME ...] [options]`` (no NAME = all).

Each benchmark is a module ``bench/<name>.py`` listed in ``BENCHMARKS`` with

* ``run(args: argparse.Namespace) -> dict`` — runs it, prints its figures, and returns
  them; this dispatcher writes the dict to ``bench/results/<name>-<timestamp>.json``;
* optionally ``add_arguments(group)`` — its own options, prefixed with its name
  (``--stow-count``) so that one command line can configure several benchmarks.

Figures only: a benchmark never asserts a target. The exit status is non-zero only when
a benchmark could not run (e.g. the server did not start).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from types import FrameType, ModuleType

from bench.common import BenchError, write_results

# name -> module. Add retrieve, metadata, qido… here as bench/<name>.py appear.
BENCHMARKS: dict[str, str] = {
    "stow": "bench.stow",
    "qido": "bench.qido",
    "retrieve": "bench.retrieve",
    "render": "bench.render",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Run Archway benchmarks against a throw-away server (see bench/README.md).",
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {list(BENCHMARKS)})",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    for name in BENCHMARKS:
        module = _load(name)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(f"{name} benchmark"))
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (and SIGINT even where a shell set it to "ignore") unwind like Ctrl-C, so
    # the `finally` blocks stop the server and delete its temporary directory.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    names = args.benchmarks or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        started = time.monotonic()
        try:
            result = _load(name).run(args)
        except BenchError as exc:
            print(f"\n{name}: could not run: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted", file=sys.stderr)
            return 130
        elapsed = time.monotonic() - started
        result["elapsed_s"] = elapsed
        path = write_results(name, result)
        print(f"\n{name}: done in {elapsed:.0f} s; figures written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
