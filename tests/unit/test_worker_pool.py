"""The process pool's rules on a fake clock, with fake processes: restarts, backoff, giving up, stopping."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from oxide.cli.work import member_command
from oxide.worker.pool import HEALTHY_SECS, MAX_QUICK_DEATHS, RESTART_MAX_SECS, Pool


@dataclass
class FakeProcess:
    """What the pool sees of a member: an exit status it is told, the signals it was sent."""

    args: list[str]
    pid: int
    started: float = 0.0
    status: int | None = None
    signals: list[int] = field(default_factory=list)
    on_signal: Callable[[FakeProcess, int], None] | None = None

    def poll(self) -> int | None:
        return self.status

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        if self.on_signal is not None:
            self.on_signal(self, signum)

    def kill(self) -> None:
        self.status = -signal.SIGKILL

    def wait(self) -> int | None:
        return self.status


@dataclass
class World:
    """The pool's clock and processes; ``script(step)`` runs once per pool look and may end processes."""

    now: float = 0.0
    spawned: list[FakeProcess] = field(default_factory=list)
    script: Callable[[World, int], None] = lambda world, step: None
    steps: int = 0

    def spawn(self, args: list[str], **options: Any) -> FakeProcess:
        assert options["start_new_session"] is True  # a Ctrl-C reaches members once, through the pool
        process = FakeProcess(args, pid=1000 + len(self.spawned), started=self.now, on_signal=_stops_clean)
        self.spawned.append(process)
        return process

    def sleep(self, secs: float) -> None:
        self.now += secs
        self.steps += 1
        if self.steps > 100_000:
            raise AssertionError("the pool never ended")
        self.script(self, self.steps)

    def of(self, index: int) -> list[FakeProcess]:
        return [p for p in self.spawned if p.args[-1] == str(index)]

    def pool(self, size: int) -> Pool:
        return Pool(
            ["oxide", "queue:work"],
            size,
            clock=lambda: self.now,
            sleep=self.sleep,
            spawn=self.spawn,
            handle_signals=False,
        )


def _stops_clean(process: FakeProcess, signum: int) -> None:
    process.status = 0


def test_members_are_started_with_their_number_and_a_sigterm_stops_all_with_status_0() -> None:
    world = World()

    def stop_after_a_while(world: World, step: int) -> None:
        if step == 10:
            pool.stop(signal.SIGTERM)

    world.script = stop_after_a_while
    pool = world.pool(3)
    assert pool.run() == 0
    assert [p.args for p in world.spawned] == [["oxide", "queue:work", "--pool-member", str(n)] for n in (1, 2, 3)]
    assert all(p.signals == [signal.SIGTERM] for p in world.spawned)


def test_a_member_that_dies_is_restarted_after_a_backoff_that_doubles(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    deaths: list[float] = []

    def kill_member_1_three_times(world: World, step: int) -> None:
        current = world.of(1)[-1]
        if current.status is None and len(deaths) < 3:
            current.status = -signal.SIGKILL
            deaths.append(world.now)
        elif len(deaths) == 3 and len(world.of(1)) == 4 and world.now > deaths[-1] + 10:
            pool.stop(signal.SIGTERM)

    world.script = kill_member_1_three_times
    pool = world.pool(2)
    with caplog.at_level(logging.INFO, "oxide.worker.pool"):
        assert pool.run() == 0
    assert len(world.of(1)) == 4
    assert len(world.of(2)) == 1  # the healthy member was left alone
    restarts = [m.getMessage() for m in caplog.records if "restarting it in" in m.getMessage()]
    assert [r.split("restarting it in ")[1] for r in restarts] == ["1s", "2s", "4s"]
    assert all("worker 1 died (killed by SIGKILL)" in r for r in restarts)


def test_a_member_that_keeps_dying_makes_the_pool_give_up_and_stop_the_others() -> None:
    world = World()

    def member_1_dies_at_once(world: World, step: int) -> None:
        current = world.of(1)[-1]
        if current.status is None:
            current.status = 1

    world.script = member_1_dies_at_once
    pool = world.pool(2)
    assert pool.run() == 1
    assert len(world.of(1)) == MAX_QUICK_DEATHS
    assert world.of(2)[0].signals == [signal.SIGTERM]
    # Each restart waited twice as long as the one before, up to the cap.
    assert world.now >= sum(min(2**n, RESTART_MAX_SECS) for n in range(MAX_QUICK_DEATHS - 1))


def test_a_member_that_ran_long_before_dying_starts_again_from_the_shortest_backoff() -> None:
    world = World()
    died_at: list[float] = []

    def dies_after_a_healthy_run(world: World, step: int) -> None:
        current = world.of(1)[-1]
        if current.status is None and world.now - current.started > HEALTHY_SECS + 1:
            current.status = 1
            died_at.append(world.now)
        if len(died_at) == MAX_QUICK_DEATHS + 2 and current.status is None:
            pool.stop(signal.SIGTERM)  # once it runs again

    world.script = dies_after_a_healthy_run
    pool = world.pool(1)
    assert pool.run() == 0  # never gave up: every death came after a healthy run
    assert len(world.of(1)) >= MAX_QUICK_DEATHS + 2


def test_a_member_that_exits_0_on_its_own_is_not_restarted_and_the_pool_ends_when_all_have() -> None:
    world = World()

    def both_finish(world: World, step: int) -> None:
        for process in world.spawned:
            if process.status is None:
                process.status = 0

    world.script = both_finish
    assert world.pool(2).run() == 0
    assert len(world.spawned) == 2


def test_a_configuration_error_is_not_retried_and_the_pool_exits_2() -> None:
    world = World()

    def misconfigured(world: World, step: int) -> None:
        for process in world.spawned:
            if process.status is None and process.args[-1] == "1":
                process.status = 2

    world.script = misconfigured
    assert world.pool(2).run() == 2
    assert len(world.of(1)) == 1


def test_a_member_that_does_not_stop_cleanly_makes_the_pool_exit_1() -> None:
    world = World()

    def stop(world: World, step: int) -> None:
        if step == 3:
            world.spawned[0].on_signal = lambda p, s: setattr(p, "status", 75)
            pool.stop(signal.SIGTERM)

    world.script = stop
    pool = world.pool(2)
    assert pool.run() == 1


def test_a_second_signal_is_passed_on_too() -> None:
    world = World()

    def two_signals(world: World, step: int) -> None:
        if step == 2:
            for process in world.spawned:
                process.on_signal = None  # the members keep running after the first
            pool.stop(signal.SIGTERM)
        if step == 4:
            pool.stop(signal.SIGINT)
        if step == 6:
            for process in world.spawned:
                process.status = 0

    world.script = two_signals
    pool = world.pool(2)
    assert pool.run() == 0
    assert all(p.signals == [signal.SIGTERM, signal.SIGINT] for p in world.spawned)


def test_the_member_command_passes_every_option_on_but_processes() -> None:
    from oxide.cli import Context, build_parser

    args = build_parser().parse_args(
        [
            "queue:work",
            "--queue=high,low",
            "--processes",
            "2",
            "--concurrency",
            "8",
            "--stop-timeout",
            "20",
            "--max-jobs",
            "100",
            "--once",
            "--tries",
            "3",
        ]
    )
    command = member_command(Context("shop.app:app", "conf", 1), args)
    assert command[1:] == [
        "-m",
        "oxide",
        "--app",
        "shop.app:app",
        "--config",
        "conf",
        "-v",
        "queue:work",
        "--queue=high,low",
        "--max-jobs=100",
        "--tries=3",
        "--concurrency=8",
        "--stop-timeout=20",
        "--once",
    ]
