"""Instructions per job, client and server, counted by valgrind's callgrind: figures that a busy
machine does not move, for the drain with reservations against the raw ``BRPOP`` loop.

    python -m bench.instructions            # needs valgrind (Debian: apt-get install valgrind)

The client's count is the worker's (or the raw loop's) process run under callgrind twice, with N1
and N2 jobs queued beforehand, against a private ``redis-server`` at full speed:
(instructions(N2) - instructions(N1)) / (N2 - N1), so start-up and shutdown cancel out. The
server's is another private ``redis-server`` under callgrind, its counters zeroed before the drain
and dumped after it. The worker's steps timed by the clock (``reserve.lua`` every 0.1 s, a clock
read every second) are made 50 times rarer, as the processes are some 50 times slower under
callgrind: otherwise they would count per job many times what they cost at full speed. Wall time is roughly proportional to the sum of the two on a quiet machine
(docs/performance.md); these counts show where a change moved the work, which the timed figures
of a shared two-core machine can only show after many repeats.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N1, N2 = 600, 3600  # multiples of 3: the worker's jobs are spread over three queues
CALLGRIND = ("valgrind", "--tool=callgrind")

# One process's work, run as ``python -c CODE KIND URL N``: drain the N jobs that fill() queued.
CODE = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING)
kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "raw":
    import redis
    client = redis.Redis.from_url(url)
    for _ in range(n):
        json.loads(client.brpop(["raw-high", "raw-default", "raw-low"], timeout=1)[1])
else:
    # Under callgrind a process runs some 50 times slower: the worker's timed steps (the periodic
    # reserve.lua, the clock read for deadlines) run 50 times less often, to keep their share per job.
    import oxide.drivers.redis, oxide.drivers.reservations
    for module, name in ((oxide.drivers.redis, "MIGRATE_EVERY_SECS"), (oxide.drivers.reservations, "CLOCK_EVERY_SECS")):
        if hasattr(module, name):  # (a tree from before the clock was followed has no CLOCK_EVERY_SECS)
            setattr(module, name, getattr(module, name) * 50)
    from bench.workers import OXIDE_QUEUES, oxide_app
    from oxide.worker import Worker, WorkerOptions
    app = oxide_app(url, 90.0)
    Worker(app, "redis", OXIDE_QUEUES, WorkerOptions(stop_when_empty=True, handle_signals=False)).run()
"""


def fill(kind: str, url: str, n: int) -> None:
    """Queue n no-op jobs for CODE (here, outside the counts): in the lowest of the raw loop's three
    lists, as the bench's raw loop has them; a third in each of the worker's three queues."""
    import redis

    from bench.workers import OXIDE_QUEUES, noop_job

    client = redis.Redis.from_url(url)
    client.flushdb()
    body = noop_job(0).to_json()
    if kind == "raw":
        client.lpush("raw-low", *[body] * n)
    else:
        for queue in OXIDE_QUEUES:
            client.lpush("oxide:queue:" + queue, *[body] * (n // 3))
    client.close()


def free_port() -> int:
    """A free port in 6440-6449 for the server under callgrind (the bench's own use 6430-6439)."""
    for port in range(6440, 6450):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit("bench.instructions: ports 6440-6449 are all taken")


def _collected(output: str) -> int:
    for line in output.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"callgrind printed no count:\n{output[-2000:]}")


def client_per_job(kind: str, url: str, workdir: Path) -> float:
    counts = []
    for n in (N1, N2):
        fill(kind, url, n)
        out = subprocess.run(
            [*CALLGRIND, f"--callgrind-out-file={workdir}/client.%p", sys.executable, "-c", CODE, kind, url, str(n)],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            check=True,
        )
        counts.append(_collected(out.stderr))
    return (counts[1] - counts[0]) / (N2 - N1)


def server_per_job(kind: str, url: str, pid: int, workdir: Path) -> float:
    fill(kind, url, N2)
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-c", CODE, kind, url, str(N2)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
    )
    before = set(workdir.glob("server.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(100):
        dumped = set(workdir.glob("server.*")) - before
        if dumped:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # let the dump be written whole
    for line in max(dumped, key=os.path.getmtime).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / (N2)
    raise RuntimeError("the server's dump holds no total")


def _start(workdir: Path, *wrapper: str) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free port, under ``wrapper`` (callgrind) if given; it and its URL."""
    port = free_port()
    server = subprocess.Popen(
        [*wrapper, "redis-server", "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], check=False, capture_output=True)
        if ping.returncode == 0:
            break
        time.sleep(0.1)
    return server, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="oxide-instructions-") as tmp:
        workdir = Path(tmp)
        # Two servers: the clients are counted against one at full speed, since a worker's periodic
        # steps (every 0.1 s, every second) would be counted per job many times over against a
        # server slowed down by callgrind; the server's own count comes from the other.
        plain, plain_url = _start(workdir)
        counted, counted_url = _start(workdir, *CALLGRIND, f"--callgrind-out-file={workdir}/server.%p")
        try:
            print("| process | client instructions per job | server instructions per job |")
            print("|---|---:|---:|")
            for kind, label in (("raw", "raw BRPOP + json.loads"), ("oxide", "oxide worker, reservations on")):
                client = client_per_job(kind, plain_url, workdir)
                server_ = server_per_job(kind, counted_url, counted.pid, workdir)
                print(f"| {label} | {client:,.0f} | {server_:,.0f} |", flush=True)
        finally:
            for server in (plain, counted):
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
