"""What a failover loses: ``python -m bench.failover [--rounds N]``.

Runs the drain of ``tests/cluster/test_failover.py`` (a producer pushing, a real worker draining,
the master holding the queue killed with SIGKILL twice in a row) on a local 3-master cluster and on
a Sentinel group, with and without ``wait_replicas = 1``, and prints how many acknowledged pushes
were lost. The next kill comes half a second after the node killed before is back as a replica
streaming its master's writes; with ``--right-after-resync``, half a second after it has loaded its
sync, which Redis 7 sends without a disk and streams on only after the replica's first acknowledgement. Without ``wait_replicas`` the producer pushes as fast as it can, one job per call; with
it, a push every 2 ms. docs/redis-compatibility.md quotes the figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.cluster.servers import LocalCluster, LocalSentinel, binaries
from tests.cluster.test_failover import FAILOVERS, drain_through_failovers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each case (default 3)")
    parser.add_argument(
        "--right-after-resync",
        action="store_true",
        help="kill the next master as soon as its replica has loaded its sync, before it streams (see the doc)",
    )
    args = parser.parse_args(argv)
    found = binaries()
    if found is None:
        raise SystemExit("bench.failover: redis-server and redis-cli are needed")
    root = Path(tempfile.mkdtemp(prefix="oxide-bench-failover-"))
    cluster = LocalCluster.start(*found, root / "cluster")
    sentinel = LocalSentinel.start(found[0], root / "sentinel")
    rows = []
    streaming = not args.right_after_resync
    try:
        for n in range(args.rounds):
            for wait in (0, 1):
                for kind in ("cluster", "sentinel"):
                    where = root / f"{kind}-{wait}-{n}"
                    where.mkdir()
                    if kind == "cluster":
                        prefix = f"oxide:queue:{{f{n}w{wait}}}:"
                        url = cluster.url
                        fail_over = lambda p=prefix: cluster.fail_over(p, streaming=streaming)  # noqa: E731
                    else:
                        prefix, url = f"oxide:queue:f{n}w{wait}-", sentinel.url
                        fail_over = lambda: sentinel.fail_over(streaming=streaming)  # noqa: E731
                    outcome = drain_through_failovers(
                        where, url, prefix, fail_over, wait_replicas=wait, pace_secs=0.002 if wait else 0.0
                    )
                    row = (
                        f"| {kind} | {wait} | {FAILOVERS} | {outcome.acked} | {len(outcome.lost)} | "
                        f"{outcome.refused} | {outcome.duplicates} | {outcome.failed} | {outcome.when_lost} |"
                    )
                    rows.append(row)
                    print(row, flush=True)
    finally:
        cluster.stop()
        sentinel.stop()
    print("\n| setup | wait_replicas | failovers | acknowledged | lost | refused | run twice | failed | when |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
