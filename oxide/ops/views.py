"""What the CLI, the exporter and the dashboard show: backend figures joined with the failed-job store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..db import TableMissing
from . import OpsBackend, QueueStats

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["failed_counts", "parse_duration", "queue_stats", "split_targets"]


def failed_counts(config: Config) -> Mapping[tuple[str, str], int] | None:
    """Failed jobs per (connection, queue) in ``failed_jobs``; None when failures are not stored or not migrated."""
    from ..failed import store_for
    from ..failed.store import DatabaseFailedJobProvider

    store = store_for(config)
    if not isinstance(store, DatabaseFailedJobProvider):
        return None
    q = store.database.dialect.quote
    try:
        rows = store.database.query(
            f"SELECT {q('connection')}, {q('queue')}, COUNT(*) FROM {q(store.table)} "
            f"GROUP BY {q('connection')}, {q('queue')}"
        )
    except TableMissing:
        return None
    finally:
        store.database.close()
    return {(str(c), str(queue)): int(n) for c, queue, n in rows}


def queue_stats(
    backend: OpsBackend, queues: Sequence[str], failed: Mapping[tuple[str, str], int] | None
) -> list[QueueStats]:
    """The backend's figures for ``queues``, each with its failed count (None: failures not stored)."""
    return [
        dataclasses.replace(s, failed=None if failed is None else failed.get((backend.name, s.queue), 0))
        for s in backend.stats(queues)
    ]


def split_targets(text: str, default_connection: str) -> list[tuple[str, str]]:
    """``"q1,redis:q2"`` as [(connection, queue)], the connection defaulting to ``default_connection``."""
    from ..drivers import check_queue_name

    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        connection, sep, queue = item.rpartition(":")
        out.append((connection if sep else default_connection, check_queue_name(queue)))
    return list(dict.fromkeys(out))


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` in seconds; ValueError naming the text otherwise."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"expected a duration such as 90, 90s, 15m, 2h or 1d, got {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"expected a duration above 0, got {text!r}")
    return seconds
