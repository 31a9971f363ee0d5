"""Serve Archway with one in-process uvicorn worker under cProfile, in every thread.

``python -m cProfile -m uvicorn`` would only see the event-loop thread, but Django runs
sync views (STOW included) in asgiref's executor threads. Here each thread gets its own
``cProfile.Profile`` (installed with ``threading.setprofile``); on SIGTERM uvicorn shuts
down gracefully, and the merged stats are written to ``--out`` (read them with
``pstats``). Used by ``python -m bench.run stow --profile``; figures taken this way are
slower than unprofiled ones and only good for *where* the time goes.

The clock is each thread's CPU time (``time.thread_time``), not wall time: a thread
waiting for a lock, the disk or the client costs nothing, so the profile shows where
CPU goes even on a machine that is busy with something else. Set
``ARCHWAY_PROFILE_CLOCK=wall`` to see waiting too.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_clock = time.perf_counter if os.environ.get("ARCHWAY_PROFILE_CLOCK") == "wall" else time.thread_time


def _start_thread_profile(frame: FrameType, event: str, arg: Any) -> None:
    """First profile event of a new thread: replace this hook by a per-thread cProfile."""
    profile = cProfile.Profile(_clock)
    with _lock:
        _profiles.append(profile)
    profile.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="where to write the merged pstats file")
    args = parser.parse_args(argv)

    import uvicorn

    # uvicorn re-raises the SIGTERM it caught once it has shut down gracefully, after
    # restoring the previous handler: make that handler an exception, so `finally` runs.
    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    threading.setprofile(_start_thread_profile)
    main_profile = cProfile.Profile(_clock)
    _profiles.append(main_profile)
    main_profile.enable()
    try:
        uvicorn.run(
            "config.asgi:application",
            host="127.0.0.1",
            port=args.port,
            workers=1,
            access_log=False,
            log_level="warning",
        )
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        with _lock:
            profiles = list(_profiles)
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            try:
                stats.add(profile)
            except TypeError:  # a thread that never recorded a call
                continue
        stats.dump_stats(args.out)
        print(f"profile of {len(profiles)} threads written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
