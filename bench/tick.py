"""The clock inside the no-op job, shared by every worker measured (ours and the peers').

A drain rate is timed from the first job's start to the last job's start, inside the worker
process (or processes), so that neither interpreter start-up nor a worker's own start-up and shutdown counts:
``(n - 1) / (t_last - t_first)``. The job is told ``n`` and the result file by the environment.

In-process workers keep a counter in memory and write one line at the end. A worker that forks
a child per job (RQ's default ``Worker``) cannot keep a counter, so ``BENCH_TICK=append`` makes
every job append its wall-clock time to the file instead (a few microseconds against a fork's
milliseconds). ``BENCH_RSS_AT`` also records the process's resident memory at that job and at the
last one, for the memory-growth figure.
"""

from __future__ import annotations

import os
import threading
import time

_state = {"count": 0, "first": 0.0, "rss_first": 0}
# Read once: the job itself must cost next to nothing, for every system alike.
_OUT = os.environ.get("BENCH_OUT", "")
_N = int(os.environ.get("BENCH_N", "0"))
_APPEND = os.environ.get("BENCH_TICK") == "append"
_RSS_AT = int(os.environ.get("BENCH_RSS_AT", "0"))
# Workers with several threads call tick at once: the count must not lose an increment.
_lock = threading.Lock()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux), or 0 where it is not available."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def tick() -> None:
    """Called once by every no-op job."""
    if _APPEND:
        with open(_OUT, "a", encoding="ascii") as file:
            file.write(f"{time.time()!r}\n")
        return
    state = _state
    with _lock:
        state["count"] += 1
        count = state["count"]
    if count == 1:
        state["first"] = time.perf_counter()
    if count == _RSS_AT:
        state["rss_first"] = rss_bytes()
    if count == _N:
        elapsed = time.perf_counter() - state["first"]
        with open(_OUT + ".tmp", "w", encoding="ascii") as file:
            file.write(f"{count - 1} {elapsed!r} {state['rss_first']} {rss_bytes()}\n")
        os.replace(_OUT + ".tmp", _OUT)


def read_result(path: str, n: int) -> tuple[float, int, int] | None:
    """(jobs per second, RSS at BENCH_RSS_AT, RSS at the end) once all ``n`` jobs ran, else None."""
    try:
        with open(path, encoding="ascii") as file:
            lines = file.read().split("\n")[:-1]  # only complete lines: a writer may be mid-line
    except FileNotFoundError:
        return None
    if len(lines) == 1 and " " in lines[0]:
        intervals, elapsed, rss_first, rss_last = lines[0].split()
        return int(intervals) / float(elapsed), int(rss_first), int(rss_last)
    if len(lines) >= n:  # append mode: one wall-clock time per job
        times = sorted(float(line) for line in lines[:n])
        return (n - 1) / (times[-1] - times[0]), 0, 0
    return None
