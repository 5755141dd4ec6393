"""The main job, on the embedded default: no server needed.

A copy of the shop example (``examples/shop``) is set up in a fresh directory,
its queue and ``failed_jobs`` tables created in a SQLite file, a batch of orders
dispatched onto the queue, a worker run until every queue is empty (high before
default before low; one listener always fails), and the failed jobs listed.
Every step is the real ``oxide`` command line, printed before it runs::

    python examples/main_job.py [--orders N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHOP = Path(__file__).resolve().parent / "shop"


def run(step: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Print the command as an operator would type it, run it, stop on failure."""
    shown = " ".join(["oxide", *argv[3:]] if argv[1:3] == ["-m", "oxide"] else ["python", *argv[1:]])
    print(f"\n## {step}\n$ {shown}", flush=True)
    result = subprocess.run(argv, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"main job: '{shown}' exited with status {result.returncode}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=3, help="how many customers and orders to dispatch (default 3)")
    parser.add_argument("--keep", metavar="DIR", help="set the shop up in DIR and keep it (default: a temporary one)")
    args = parser.parse_args()

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="oxide-shop-"))
    if workdir.exists() and any(workdir.iterdir()):
        sys.exit(f"main job: {workdir} is not empty")
    shutil.copytree(SHOP / "shop", workdir / "shop", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SHOP / "config", workdir / "config")
    # Everything below reads config/ in workdir only: the shop's default connection, 'database'.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXIDE_", "QUEUE_", "REDIS_", "DB_", "DATABASE_"))}
    env.update(OXIDE_APP="shop.app:app", PYTHONPATH=str(workdir), PYTHONUNBUFFERED="1")
    oxide = [sys.executable, "-m", "oxide"]
    print(f"The shop, set up in {workdir}: jobs and failed jobs in database/database.sqlite there.")
    try:
        run(
            "Publish the migrations of the jobs and failed_jobs tables",
            [*oxide, "vendor:publish", "queue"],
            workdir,
            env,
        )
        run("Create the tables in database/database.sqlite", [*oxide, "migrate"], workdir, env)
        run(
            "Dispatch: the inline listener runs now, queued ones become jobs",
            [sys.executable, "-m", "shop.place_orders", str(args.orders)],
            workdir,
            env,
        )
        run(
            "Work: high before default before low, until every queue is empty",
            [*oxide, "queue:work", "--queue=high,default,low", "--stop-when-empty"],
            workdir,
            env,
        )
        run("What failed (SyncLegacyCrm always raises)", [*oxide, "queue:failed"], workdir, env)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
