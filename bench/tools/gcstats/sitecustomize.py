"""Garbage-collector pauses of a bench server, without touching its code.

bench/run puts this directory on PYTHONPATH of every Python server it starts, so Python
imports this module at startup (site.py's ``sitecustomize`` hook). It logs each collection
that took at least 2 ms, as one line on stderr:

    GCSTAT gen=2 ms=117.9 collected=3514 t=1795446454.913

bench/run keeps the lines that fall into a run's measurement window. Cost: one callback
per collection (two time reads); nothing else changes in the process.
"""

import gc
import os
import sys
import time

_start = [0.0]


def _gc_callback(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _start[0]) * 1000
    if ms >= 2.0:
        sys.stderr.write(
            f"GCSTAT gen={info['generation']} ms={ms:.1f} collected={info['collected']} t={time.time():.3f}\n"
        )


gc.callbacks.append(_gc_callback)


# Opt-in (bench/run --profile, scenario C): where a server's memory per connection goes.
# With BENCH_TRACEMALLOC_OUT set, tracemalloc records allocations from startup; SIGUSR1
# takes a baseline snapshot, a second SIGUSR1 writes the top allocation sites grown since
# then to that file (one line each: size_bytes count site).
if os.environ.get("BENCH_TRACEMALLOC_OUT"):
    import signal as _signal
    import tracemalloc as _tracemalloc

    _tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))
    _snapshots = []

    def _on_usr1(signum, frame):
        snap = _tracemalloc.take_snapshot().filter_traces(
            [_tracemalloc.Filter(False, _tracemalloc.__file__)]
        )
        if not _snapshots:
            _snapshots.append(snap)
            return
        stats = snap.compare_to(_snapshots[0], "lineno")
        with open(os.environ["BENCH_TRACEMALLOC_OUT"], "w") as fh:
            for stat in stats[:60]:
                frame = stat.traceback[0]
                fh.write(f"{stat.size_diff} {stat.count_diff} {frame.filename}:{frame.lineno}\n")

    _signal.signal(_signal.SIGUSR1, _on_usr1)
