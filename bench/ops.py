"""The operator view's figure: ``oxide queue:monitor`` on a deep queue, the whole command's wall time.

The queue is filled as a Rust producer or redis-cli would (plain LPUSH of job JSON, no push time
recorded), then the command runs twice in a fresh interpreter each time: the first run finds no
marks yet (it marks the newest job and dates the front by it), the second reads the marks the
first left. The figure is the slower of the two, interpreter start-up included: what a cron line waits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cases", "figures"]

QUEUE = "bench-deep"
CHUNK = 10_000


def figures(figure: Callable[..., Any], depth: int) -> list[Any]:
    """The figures of this module, built with bench.run's Figure."""
    return [
        figure(
            "monitor_deep",
            f"oxide queue:monitor on a queue of {depth:,} jobs, wall time",
            "s",
            target="< 1 s",
            higher_is_better=False,
        )
    ]


def cases(url: str, depth: int) -> list[tuple[str, Callable[[], float]]]:
    """(figure key, measurement) pairs for bench.run's loop."""
    return [("monitor_deep", lambda: monitor_deep(url, depth))]


def fill(url: str, depth: int) -> None:
    import redis

    from oxide.drivers.redis import queue_key

    client = redis.Redis.from_url(url)
    body = json.dumps({"event_name": "bench.tick", "listener_type": "bench.workers.Tick", "payload": {}})
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, depth, CHUNK):
            pipe.lpush(
                queue_key(QUEUE), *[body.replace("{}", f'{{"i":{i}}}') for i in range(start, min(depth, start + CHUNK))]
            )
            pipe.execute()
    client.close()


def monitor_deep(url: str, depth: int) -> float:
    fill(url, depth)
    with tempfile.TemporaryDirectory(prefix="oxide-bench-ops-") as tmp:
        config = Path(tmp) / "config"
        config.mkdir()
        (config / "queue.toml").write_text(
            f'default = "redis"\n[connections.redis]\ndriver = "redis"\nurl = "{url}"\n[failed]\ndriver = "none"\n'
        )
        slowest = 0.0
        for _ in range(2):
            start = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "oxide",
                    "--config",
                    str(config),
                    "queue:monitor",
                    QUEUE,
                    "--max",
                    str(depth + 1),
                    "--json",
                ],
                check=False,
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            slowest = max(slowest, time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"queue:monitor exited {done.returncode}: {done.stderr.strip()}")
            [row] = json.loads(done.stdout)
            if row["ready"] != depth:
                raise RuntimeError(f"queue:monitor saw {row['ready']} ready jobs, {depth} were pushed")
    return slowest
