"""``queue:work --processes P``: one command that runs P worker processes and looks after them.

Each member is a ``python -m oxide ... queue:work`` process of its own (its own
interpreter, connections and slots; nothing is forked from a parent holding
sockets or threads), started with the same options. The pool:

- restarts a member that dies (a non-zero status, or killed by a signal),
  after a backoff that doubles with each quick death (1 s, 2 s, 4 s … at most
  :data:`RESTART_MAX_SECS`), logging why; a member that ran
  :data:`HEALTHY_SECS` before it died starts again from the shortest backoff;
- gives up when one member dies :data:`MAX_QUICK_DEATHS` times in a row
  without running that long: it stops the others and exits 1, so that the
  process manager above sees that something is wrong;
- does not restart a member that exits 2 (a usage or configuration error:
  starting it again would fail the same way): the pool stops and exits 2;
- does not restart a member that exits 0: it stopped on its own (``--once``,
  ``--max-jobs``, ``--max-time``, ``--stop-when-empty``, ``queue:restart``);
  the pool exits 0 once all have;
- forwards ``SIGTERM`` and ``SIGINT`` to every member (a second signal too:
  the members then give back what they still run) and exits once all have
  stopped: 0 if they all stopped cleanly, 1 otherwise.

With a health file (``--health-file PATH``) each member touches ``PATH.<n>`` and the pool gives
``PATH`` the time of the stalest running member, so that one stuck member makes the pool's
file go stale even while the others are fine.

Members run in a process group of their own, so that a Ctrl-C in a terminal
(which signals the whole foreground group) reaches them once, through the
pool, not twice; on Linux each member is also told to stop (SIGTERM) if the
pool itself is killed. Signal handlers only set flags; the pool's loop acts.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["HEALTHY_SECS", "MAX_QUICK_DEATHS", "RESTART_MAX_SECS", "Pool"]

log = logging.getLogger("oxide.worker.pool")

RESTART_FIRST_SECS = 1.0
RESTART_MAX_SECS = 30.0
HEALTHY_SECS = 60.0
MAX_QUICK_DEATHS = 5
LOOK_EVERY_SECS = 0.1
EXIT_USAGE = 2  # as the command line's own (oxide.cli)


@dataclass
class _Member:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None  # when a dead member is due to start again
    finished: bool = False  # exited on its own, or stopped with the pool
    status: int = 0


def _why(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux's PR_SET_PDEATHSIG: SIGTERM when the pool dies, so that a kill -9 of the pool
    # does not leave its members running unsupervised. Elsewhere nothing happens.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Pool:
    """Runs ``size`` copies of ``command`` and keeps them running until told to stop."""

    def __init__(
        self,
        command: Sequence[str],
        size: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        spawn: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
        handle_signals: bool = True,
        health_file: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.health_file = health_file
        self.members = [_Member(index) for index in range(1, size + 1)]
        self._clock = clock
        self._sleep = sleep
        self._spawn = spawn
        self._handle_signals = handle_signals
        self._signals: list[int] = []  # written by the handler: appended to, nothing else
        self._forwarded = 0
        self._gave_up = False
        self._misconfigured = False

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask every member to stop (as a signal to the pool does); safe from another thread."""
        self._signals.append(signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        """Start the members and look after them until all have stopped; the exit status of the pool."""
        previous: dict[int, Any] = {}
        if self._handle_signals:
            for signum in (signal.SIGINT.value, signal.SIGTERM.value):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            log.info("pool started: %d worker processes", len(self.members))
            for member in self.members:
                self._start(member)
            while not all(m.finished for m in self.members):
                self._forward_signals()
                self._look()
                self._report_health()
                self._sleep(LOOK_EVERY_SECS)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for member in self.members:  # only after an error of our own: never leave members behind
                if member.proc is not None and member.proc.poll() is None:
                    member.proc.kill()
                    member.proc.wait()
        failed = [m for m in self.members if m.status != 0]
        status = EXIT_USAGE if self._misconfigured else 1 if self._gave_up or failed else 0
        log.info("pool stopped: exit status %d", status)
        return status

    @property
    def stopping(self) -> bool:
        return bool(self._signals) or self._gave_up

    def member_health_file(self, index: int) -> Path | None:
        """The health file member ``index`` touches, if the pool has one."""
        if self.health_file is None:
            return None
        return self.health_file.with_name(f"{self.health_file.name}.{index}")

    def _report_health(self) -> None:
        if self.health_file is None:
            return
        times: list[float] = []
        for member in self.members:
            path = self.member_health_file(member.index)
            if member.proc is None or path is None:
                continue  # not running: nothing of it to report
            try:
                times.append(path.stat().st_mtime)
            except FileNotFoundError:
                return  # a member that has not touched its file yet: wait for it
        if not times:
            return
        stalest = min(times)
        try:
            self.health_file.touch()
            os.utime(self.health_file, (stalest, stalest))
        except OSError as exc:
            log.error("cannot write the health file %s: %s", self.health_file, exc)

    def _start(self, member: _Member) -> None:
        health = self.member_health_file(member.index)
        extra = [] if health is None else ["--health-file", str(health)]
        member.proc = self._spawn(
            [*self.command, *extra, "--pool-member", str(member.index)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_stop_with_parent if sys.platform.startswith("linux") else None,
        )
        member.started = self._clock()
        member.restart_at = None
        log.info("worker %d started (pid %d)", member.index, member.proc.pid)

    def _forward_signals(self) -> None:
        while self._forwarded < len(self._signals):
            signum = self._signals[self._forwarded]
            self._forwarded += 1
            live = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
            log.info("pool: %s, passed on to %d worker process(es)", signal.Signals(signum).name, len(live))
            for member in live:
                assert member.proc is not None
                member.proc.send_signal(signum)
            for member in self.members:
                if member.proc is None:  # dead, waiting for its restart: it stays down
                    member.finished = True

    def _look(self) -> None:
        now = self._clock()
        for member in self.members:
            if member.finished:
                continue
            if member.proc is None:
                if member.restart_at is not None and now >= member.restart_at and not self.stopping:
                    self._start(member)
                continue
            status = member.proc.poll()
            if status is None:
                continue
            member.proc = None
            if status == 0 or self.stopping:
                member.finished, member.status = True, status
                log.info("worker %d stopped (%s)", member.index, _why(status))
                continue
            self._died(member, status, now)

    def _died(self, member: _Member, status: int, now: float) -> None:
        if status == EXIT_USAGE:
            member.finished, member.status = True, status
            log.error(
                "worker %d exited with status 2, a usage or configuration error (its message is above): "
                "not restarting it; stopping the other workers",
                member.index,
            )
            self._misconfigured = self._gave_up = True
            self.stop(signal.SIGTERM)
            return
        lived = now - member.started
        member.quick_deaths = 1 if lived >= HEALTHY_SECS else member.quick_deaths + 1
        if member.quick_deaths >= MAX_QUICK_DEATHS:
            member.finished, member.status = True, status
            log.error(
                "worker %d died %d times in a row within %.0fs of starting (last: %s): giving up, stopping the "
                "other workers",
                member.index,
                member.quick_deaths,
                HEALTHY_SECS,
                _why(status),
            )
            self._gave_up = True
            self.stop(signal.SIGTERM)
            return
        delay = min(RESTART_FIRST_SECS * 2 ** (member.quick_deaths - 1), RESTART_MAX_SECS)
        member.restart_at = now + delay
        log.warning("worker %d died (%s) after %.1fs; restarting it in %.0fs", member.index, _why(status), lived, delay)
