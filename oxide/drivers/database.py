"""The ``database`` driver: jobs as rows of one table in SQLite, PostgreSQL or MariaDB/MySQL.

Laravel's database queue is the model; what a worker sees is the redis driver's
behaviour, step for step. A job is a row in exactly one state: *waiting* (its
``line_position`` orders its queue's line), *delayed* (``available_at`` says
when it joins the line) or *reserved* (``reserved_until`` is its visibility
deadline, ``reservation`` names the reservation). Each take first tidies the
queues it names, as the redis ``reserve`` script does: due delayed jobs join the
back of their line, oldest due first; reservations whose deadline passed return
to the front, oldest deadline first, their ``expirations`` counted. Then it
reserves the head of the first non-empty queue in the order given.

Takes never hand one job to two workers: on SQLite a take runs in a
``BEGIN IMMEDIATE`` transaction (one writer at a time); on PostgreSQL and
MariaDB/MySQL it reads with ``FOR UPDATE SKIP LOCKED``, so concurrent takers
lock different rows without waiting for each other. ``docs/database-driver.md``
has the table, the statements and the measured figures.

Time is the database server's clock (one ``SELECT`` per transaction), so the
clocks of worker machines never move a deadline; tests pass ``clock_ms``. The
wait of an idle ``pop`` polls every ``poll_interval_secs`` with ``sleep``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConnectionConfig
from ..db import Database, Session, TableMissing
from ..db.dialects import dialect_named
from ..errors import ConfigError
from . import Delivery, JobRunner, delay_ms
from .jobs_sql import MIGRATE_LIMIT, JobsSql

__all__ = ["MIGRATE_LIMIT", "DatabaseDriver", "Held", "open_database"]

_INSERT_CHUNK = 100  # rows per INSERT: few placeholders enough for every server
_TAKE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Held:
    """The receipt of one reservation: the job's row and this reservation's random token."""

    id: int
    token: str


class DatabaseDriver:
    """Jobs in a SQL table, taken in strict priority order and held in reservations until acknowledged."""

    consumable = True

    def __init__(
        self,
        config: ConnectionConfig,
        runner: JobRunner | None = None,
        database: Database | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = config.name
        self.config = config
        self.database = database if database is not None else open_database(config)
        self.table = config.table
        self.visibility_ms = round(config.visibility_timeout_secs * 1000)
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._server_checked = self.database.dialect.server_version_sql is None
        self.sql = JobsSql(self.database.dialect, config.table)

    def __repr__(self) -> str:
        return f"DatabaseDriver({self.name!r}, {self.database.name}, table={self.table!r})"

    # -- producers ---------------------------------------------------------------------------------

    def push(self, queue: str, body: str) -> None:
        self.push_many(queue, [body])

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        if not bodies:
            return
        with self._transaction() as (session, now):
            first = self._back_of_line(session, queue)
            self._insert(session, [(queue, body, first + i, None, now) for i, body in enumerate(bodies)])

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        due_in = delay_ms(delay_secs)
        if due_in <= 0:
            self.push_many(queue, bodies)
            return
        if not bodies:
            return
        with self._transaction() as (session, now):
            self._insert(session, [(queue, body, None, now + due_in, now) for body in bodies])

    # -- consumers ---------------------------------------------------------------------------------

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        if not queues:
            return None
        # The wait is counted in the sleeps asked for, not read from a clock: a fake sleep makes it instant.
        waited = 0.0
        while True:
            delivery = self._take(queues)
            if delivery is not None or waited >= timeout_secs:
                return delivery
            step = min(self.config.poll_interval_secs, timeout_secs - waited)
            self._sleep(step)
            waited += step

    def ack(self, delivery: Delivery) -> bool:
        held = _held(delivery)
        with self._transaction(clock=False) as (session, _now):
            return session.execute(self.sql.ack, (held.id, held.token)) == 1

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        held = _held(delivery)
        due_in = delay_ms(delay_secs)
        with self._transaction() as (session, now):
            if due_in > 0:
                place, due = None, now + due_in
            else:
                place, due = self._back_of_line(session, delivery.queue), None
            return session.execute(self.sql.release, (body, place, due, held.id, held.token)) == 1

    def extend(self, delivery: Delivery) -> bool:
        held = _held(delivery)
        with self._transaction() as (session, now):
            if session.execute(self.sql.extend, (now + self.visibility_ms, held.id, held.token)) == 1:
                return True
            # MySQL counts only rows it changed: a deadline set to its own value reports 0. Ask.
            return bool(session.query(self.sql.holds, (held.id, held.token)))

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        by_queue: dict[str, list[Held]] = {}
        for delivery in deliveries:
            by_queue.setdefault(delivery.queue, []).append(_held(delivery))
        back = 0
        with self._transaction(clock=False) as (session, _now):
            for queue, held in by_queue.items():
                low = session.query(self.sql.ends, (queue,))[0][0]
                front = (1 if low is None else int(low)) - len(held)
                for i, job in enumerate(held):
                    back += session.execute(self.sql.unreserve, (front + i, job.id, job.token))
        return back

    def size(self, queue: str) -> int:
        with self._errors():
            return int(self.database.query(self.sql.size, (queue,))[0][0])

    def close(self) -> None:
        self.database.close()

    # -- the take ----------------------------------------------------------------------------------

    def _take(self, queues: Sequence[str]) -> Delivery | None:
        with self._transaction() as (session, now):
            self._tidy(session, queues, now)
            for _attempt in range(_TAKE_ATTEMPTS):
                row = self._head(session, queues)
                if row is None:
                    return None
                job_id, queue, payload, expirations = row
                token = secrets.token_hex(16)
                # The guard cannot fail while the row is locked (or SQLite is); it is there so that a
                # connection whose transactions are weaker than ours skips the job instead of sharing it.
                if session.execute(self.sql.reserve, (now + self.visibility_ms, token, job_id)) == 1:
                    body = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
                    return Delivery(str(queue), body, Held(int(job_id), token), int(expirations))
        return None

    def _head(self, session: Session, queues: Sequence[str]) -> tuple[Any, ...] | None:
        """The first waiting job of the first non-empty queue in ``queues``, locked for us."""
        if not self.database.dialect.skip_locked:
            # SQLite: the whole database is ours (BEGIN IMMEDIATE); one statement for every queue.
            rows = session.query(self.sql.head_of_first(len(queues)), tuple(queues))
            return rows[0] if rows else None
        # Row locks: one probe per queue in priority order, each locking only the row it returns.
        # One statement for all of them would lock more: sorted together, InnoDB locks every row it
        # sorted (another taker then finds nothing), and per-queue subqueries lock each queue's head.
        for queue in queues:
            rows = session.query(self.sql.head_of_one(), (queue,))
            if rows:
                return rows[0]
        return None

    def _tidy(self, session: Session, queues: Sequence[str], now: int) -> None:
        """Due delayed jobs join the back of their line; expired reservations return to its front."""
        for queue in dict.fromkeys(queues):
            joining = [row[0] for row in session.query(self.sql.due("available_at"), (queue, now))]
            returning = [row[0] for row in session.query(self.sql.due("reserved_until"), (queue, now))]
            if not joining and not returning:
                continue
            low, high = session.query(self.sql.ends, (queue,))[0]
            back = 1 if high is None else int(high) + 1
            for i, job_id in enumerate(joining):
                session.execute(self.sql.promote, (back + i, job_id))
            if low is None:
                low = back if joining else 1
            # Oldest deadline first, all of them in front of everything waiting.
            for i, job_id in enumerate(returning):
                session.execute(self.sql.give_back, (int(low) - len(returning) + i, job_id))

    # -- internals ---------------------------------------------------------------------------------

    def _back_of_line(self, session: Session, queue: str) -> int:
        high = session.query(self.sql.ends, (queue,))[0][1]
        return 1 if high is None else int(high) + 1

    def _insert(self, session: Session, rows: Sequence[tuple[str, str, int | None, int | None, int]]) -> None:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            session.execute(self.sql.insert(len(chunk)), [value for row in chunk for value in row])

    @contextmanager
    def _transaction(self, *, clock: bool = True) -> Iterator[tuple[Session, int]]:
        """A transaction that changes rows, with the time it runs at (0 when ``clock`` is False)."""
        with self._errors():
            if not self._server_checked:
                self._check_server()
            with self.database.transaction(for_update=True) as session:
                now = 0
                if clock:
                    now = self._clock_ms() if self._clock_ms is not None else self._query_clock(session)
                yield session, now

    def _query_clock(self, session: Session) -> int:
        return int(session.query(self.database.dialect.epoch_ms_sql)[0][0])

    def _check_server(self) -> None:
        dialect = self.database.dialect
        assert dialect.server_version_sql is not None
        version = str(self.database.query(dialect.server_version_sql)[0][0])
        problem = dialect.skip_locked_missing(version)
        if problem is not None:
            raise ConfigError(
                f"queue connection {self.name!r} on {self.database.name}: {problem}; the database driver needs it "
                "so that several workers can take jobs at once. Use a newer server, or the redis driver."
            )
        self._server_checked = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except TableMissing:
            raise TableMissing(
                f"queue connection {self.name!r}: table {self.table!r} does not exist in {self.database.name}; "
                "create it with: oxide vendor:publish queue && oxide migrate"
            ) from None


def open_database(config: ConnectionConfig, *, timeout_secs: float = 5.0) -> Database:
    """The database of a ``database`` connection, each new connection prepared for the queue (SQLite: WAL)."""
    url = config.database
    if url is None:
        raise ConfigError(f"queue connection {config.name!r}: no database connection was resolved for it")
    dialect = dialect_named(url.dialect)
    # load_config made a SQLite path absolute already, so no application root is needed here.
    connect = dialect.connector(url, Path.cwd(), timeout_secs=timeout_secs, create=False)

    def connect_for_queue() -> Any:
        connection = connect()
        try:
            dialect.prepare_queue_connection(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    label = f"database {config.connection!r} ({url.redacted()})"
    return Database(connect_for_queue, dialect, name=label, secrets=[url.password] if url.password else [])


def _held(delivery: Delivery) -> Held:
    if not isinstance(delivery.receipt, Held):
        raise TypeError(f"not a delivery of the database driver: receipt {delivery.receipt!r}")
    return delivery.receipt
