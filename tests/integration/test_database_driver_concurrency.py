"""Four OS processes drain one queue of the database driver, on SQLite, PostgreSQL and MariaDB.

Each process is this module run as a program: it takes jobs in batches (several
held at once), writes every take and every acknowledgement to its own record
file before going on, and stops when the queue's table holds none of its rows.

1. All four alive: every job is taken exactly once and every ack succeeds.
2. One of them is killed with SIGKILL mid-drain, while it holds a batch of
   reservations and has a take transaction open (SQLite's write lock, or a row
   lock): the others carry on at once, the held jobs come back after the short
   visibility timeout with one expiration counted, nothing is lost, and the only
   jobs taken twice are the ones the killed process held.

No assertion depends on timing; the figures printed (``-s``) are for the docs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from oxide.config import ConnectionConfig, parse_database_url
from oxide.db import connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.drivers import Delivery
from oxide.drivers.database import DatabaseDriver
from tests.conftest import ScratchDatabase

JOBS = 2000  # drained by four live processes
KILL_JOBS = 1000  # drained while one of them is killed: fewer, to keep the test near half a minute
PROCESSES = 4
HOLD = 4  # jobs a process holds before acknowledging them
VICTIM_AFTER_BATCHES = 20
REPO = Path(__file__).resolve().parents[2]


def _driver(url: str, visibility_secs: float) -> DatabaseDriver:
    parsed = parse_database_url(url)
    config = ConnectionConfig(
        name="drain",
        driver="database",
        visibility_timeout_secs=visibility_secs,
        poll_interval_secs=0.05,
        connection="test",
        database=parsed,
    )
    return DatabaseDriver(config)


def drain(url: str, queue: str, visibility_secs: float, record_path: str, victim: bool) -> None:
    """One process: take HOLD jobs, record them, ack them, record that; until the table is empty."""
    driver = _driver(url, visibility_secs)
    q = driver.database.dialect.quote
    rows_left = f"SELECT COUNT(*) FROM {q('jobs')} WHERE {q('queue')} = ?"
    head = (
        f"SELECT {q('id')} FROM {q('jobs')} WHERE {q('queue')} = ? AND {q('line_position')} IS NOT NULL "
        f"ORDER BY {q('line_position')}, {q('id')} LIMIT 1{driver.database.dialect.skip_locked}"
    )
    fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(line: str) -> None:
        os.write(fd, (line + "\n").encode())  # unbuffered: what is written survives a SIGKILL

    batches = 0
    slowest = 0.0  # the longest ack or non-waiting take: how long a lock kept this process waiting

    def timed_pop(wait_secs: float) -> Delivery | None:
        nonlocal slowest
        began = time.monotonic()
        delivery = driver.pop([queue], wait_secs)
        if wait_secs == 0:
            slowest = max(slowest, time.monotonic() - began)
        return delivery

    while True:
        batch = []
        while len(batch) < HOLD and (delivery := timed_pop(0 if batch else 0.2)) is not None:
            record(f"take {delivery.body.decode()} {delivery.expirations}")
            batch.append(delivery)
        if victim and batches >= VICTIM_AFTER_BATCHES and batch:
            # Die holding the batch, inside an open take transaction that locks the next job.
            with driver.database.transaction(for_update=True) as session:
                session.query(head, (queue,))
                record("holding")
                time.sleep(600)
        for delivery in batch:
            began = time.monotonic()
            ok = driver.ack(delivery)
            slowest = max(slowest, time.monotonic() - began)
            record(f"ack {delivery.body.decode()} {int(ok)}")
        batches += 1
        if not batch and int(driver.database.query(rows_left, (queue,))[0][0]) == 0:
            break
    record(f"done {slowest:.3f}")


@dataclass
class Records:
    takes: list[tuple[str, int]]  # (body, expirations)
    acks: list[tuple[str, bool]]
    holding: bool
    done: bool
    slowest_secs: float = 0.0


def read_records(path: Path) -> Records:
    records = Records([], [], holding=False, done=False)
    for line in path.read_text().splitlines():
        word, *rest = line.split(" ")
        if word == "take":
            records.takes.append((rest[0], int(rest[1])))
        elif word == "ack":
            records.acks.append((rest[0], rest[1] == "1"))
        elif word == "holding":
            records.holding = True
        elif word == "done":
            records.done = True
            records.slowest_secs = float(rest[0])
    return records


def _start(url: str, queue: str, visibility_secs: float, path: Path, victim: bool) -> subprocess.Popen[bytes]:
    role = "victim" if victim else "worker"
    module = "tests.integration.test_database_driver_concurrency"
    return subprocess.Popen([sys.executable, "-m", module, url, queue, str(visibility_secs), str(path), role], cwd=REPO)


def run_drain(
    scratch: ScratchDatabase, tmp_path: Path, queue: str, visibility_secs: float, *, jobs: int, kill_one: bool
) -> tuple[list[Records], float]:
    """Push ``jobs`` jobs, drain them with PROCESSES processes; returns their records and the seconds it took."""
    producer = _driver(scratch.url, visibility_secs)
    producer.push_many(queue, [f"job-{n}" for n in range(jobs)])
    producer.close()
    paths = [tmp_path / f"{queue}-{i}.log" for i in range(PROCESSES)]
    started = time.monotonic()
    processes = [_start(scratch.url, queue, visibility_secs, p, kill_one and i == 0) for i, p in enumerate(paths)]
    try:
        if kill_one:
            while not (paths[0].exists() and read_records(paths[0]).holding):
                assert processes[0].poll() is None, "the process to be killed ended before it held a batch"
                time.sleep(0.005)
            processes[0].send_signal(signal.SIGKILL)
        for process in processes:
            process.wait(timeout=90)
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if kill_one:
        assert processes[0].returncode == -signal.SIGKILL
    assert all(p.returncode == 0 for p in processes[int(kill_one) :]), [p.returncode for p in processes]
    return [read_records(p) for p in paths], elapsed


@pytest.fixture
def migrated(scratch_db: ScratchDatabase) -> ScratchDatabase:
    database = connect_database(parse_database_url(scratch_db.url), scratch_db.root, create=True)
    directory = scratch_db.root / "database" / "migrations"
    publish("queue", directory)
    Migrator(database).migrate(load_migrations(directory))
    database.close()
    return scratch_db


def _rows_left(scratch: ScratchDatabase) -> int:
    driver = _driver(scratch.url, 1)
    try:
        return int(driver.database.query("SELECT COUNT(*) FROM jobs")[0][0])
    finally:
        driver.close()


@pytest.mark.timeout(180)
def test_four_processes_take_every_job_exactly_once_and_a_killed_one_loses_nothing(
    migrated: ScratchDatabase, tmp_path: Path
) -> None:
    everything = {f"job-{n}" for n in range(JOBS)}

    # 1. All alive.
    records, elapsed = run_drain(migrated, tmp_path, "alive", 60, jobs=JOBS, kill_one=False)
    taken = Counter(body for r in records for body, _ in r.takes)
    assert set(taken) == everything
    assert [body for body, count in taken.items() if count > 1] == []
    assert all(expirations == 0 for r in records for _, expirations in r.takes)
    assert all(ok for r in records for _, ok in r.acks)
    assert sum(len(r.acks) for r in records) == JOBS
    assert all(r.done for r in records)
    shares = sorted(len(r.takes) for r in records)
    slowest = max(r.slowest_secs for r in records)
    print(
        f"\n[{migrated.dialect}] alive: {JOBS} jobs, {PROCESSES} processes, {elapsed:.1f}s, shares {shares}, "
        f"longest take/ack {slowest:.3f}s"
    )

    # 2. One killed while it holds a batch and an open take transaction.
    visibility = 2.0
    everything = {f"job-{n}" for n in range(KILL_JOBS)}
    records, elapsed = run_drain(migrated, tmp_path, "killed", visibility, jobs=KILL_JOBS, kill_one=True)
    victim, survivors = records[0], records[1:]
    held = {body for body, _ in victim.takes} - {body for body, _ in victim.acks}
    assert 1 <= len(held) <= HOLD
    assert all(ok for r in records for _, ok in r.acks)
    survivor_takes = Counter(body for r in survivors for body, _ in r.takes)
    assert [body for body, count in survivor_takes.items() if count > 1] == []  # live workers never share a job
    acked = Counter(body for r in records for body, ok in r.acks if ok)
    lost = everything - set(acked)
    assert lost == set()
    assert [body for body, count in acked.items() if count > 1] == []
    taken_twice = {body for body in everything if survivor_takes[body] + (body in held) > 1}
    assert taken_twice == held  # duplicates: exactly the jobs the killed process held
    came_back = {body: e for r in survivors for body, e in r.takes if body in held}
    assert came_back == dict.fromkeys(held, 1)  # each with its lost run counted
    assert all(e == 0 for r in survivors for body, e in r.takes if body not in held)
    assert _rows_left(migrated) == 0
    print(
        f"[{migrated.dialect}] killed: {KILL_JOBS} jobs, {PROCESSES} processes, 1 SIGKILL holding {len(held)}, "
        f"lost {len(lost)}, duplicates {len(taken_twice)}, {elapsed:.1f}s (visibility {visibility:g}s)"
    )


if __name__ == "__main__":
    url, queue, visibility, record_path, role = sys.argv[1:]
    drain(url, queue, float(visibility), record_path, role == "victim")
