"""Draining a fake through the real worker: outcomes, retries on a fake clock, failed jobs, and the limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from oxide import App, Event, Job, Mode
from oxide.attempts import AttemptPolicy
from oxide.errors import ListenerNotRegistered, MaxAttemptsExceeded
from oxide.failed import FailedJob
from oxide.testing import FakeClock, MemoryDriver, QueueFake, RedisFake, WorkResult, drain, sqlite_failed_store
from oxide.testing.drivers import install, uninstall

from .support import make_config, row


@dataclass
class Signup(Event):
    event_name = "kit.signup"
    n: int


@dataclass
class Welcomed(Event):
    event_name = "kit.welcomed"
    n: int


RUNS: Counter[tuple[str, int]] = Counter()
STATE: dict[str, App] = {}


class Welcome:
    """Succeeds, and dispatches Welcomed: a job pushed by a running job."""

    def handle(self, event: Signup) -> None:
        RUNS["Welcome", event.n] += 1
        STATE["app"].dispatch(Welcomed(n=event.n))


class Thank:
    async def handle(self, event: Welcomed) -> None:
        RUNS["Thank", event.n] += 1


class FlakyTwice:
    """Fails its first two runs for each event, then succeeds."""

    def handle(self, event: Signup) -> None:
        RUNS["FlakyTwice", event.n] += 1
        if RUNS["FlakyTwice", event.n] <= 2:
            raise ConnectionError(f"smtp down for {event.n}")


class Broken:
    def handle(self, event: Signup) -> None:
        RUNS["Broken", event.n] += 1
        raise RuntimeError(f"broken on {event.n}")


def build_app() -> App:
    RUNS.clear()
    app = STATE["app"] = App(config=make_config())
    app.listen(Signup, Welcome, Mode.queue("redis").on_queue("emails"))
    app.listen(Welcomed, Thank, Mode.queue("redis").on_queue("low"))
    app.listen(Signup, FlakyTwice, Mode.queue("redis").tries(3).backoff(10))
    app.listen(Signup, Broken, Mode.queue("redis").tries(2))
    return app


@pytest.fixture
def app() -> Iterator[App]:
    app = build_app()
    yield app
    app.close()


@pytest.fixture(params=["QueueFake", "RedisFake"])
def fake(request: pytest.FixtureRequest, app: App) -> Iterator[QueueFake | RedisFake]:
    """The same tests on the in-memory fake and on fakeredis through the real Redis driver."""
    made = QueueFake(app) if request.param == "QueueFake" else RedisFake(app)
    yield made
    made.restore()


def outcomes(result: WorkResult) -> dict[tuple[str, int], tuple[str, list[str]]]:
    return {
        (job.listener_type.rsplit(".", 1)[1], job.payload["n"]): (job.status, [r.outcome for r in job.runs])
        for job in result.jobs
    }


def test_every_job_runs_until_done_or_failed(app: App, fake: QueueFake | RedisFake) -> None:
    app.dispatch(Signup(n=1))
    result = fake.drain()
    assert outcomes(result) == {
        ("Welcome", 1): ("done", ["done"]),
        ("Thank", 1): ("done", ["done"]),  # pushed while the drain ran, on a queue nobody named
        ("FlakyTwice", 1): ("done", ["retry", "retry", "done"]),
        ("Broken", 1): ("failed", ["retry", "failed"]),
    }
    assert RUNS == {("Welcome", 1): 1, ("Thank", 1): 1, ("FlakyTwice", 1): 3, ("Broken", 1): 2}
    assert [j.listener_type.rsplit(".", 1)[1] for j in result.done] == ["Welcome", "FlakyTwice", "Thank"]
    [broken] = result.failed
    assert broken.error == "RuntimeError: broken on 1"
    assert isinstance(broken.exception, RuntimeError)
    assert broken.attempts == 2
    assert broken.failed_job is not None
    assert "RuntimeError: broken on 1" in broken.failed_job.exception
    assert [j.listener_type.rsplit(".", 1)[1] for j in result.retried] == ["FlakyTwice", "Broken"]
    assert result.failed_jobs == [broken.failed_job]
    assert result.of(Thank)[0].queue == "low"
    assert [j.status for j in result.of(Signup)] == ["done", "done", "failed"]


def test_retries_wait_out_their_backoff_on_the_fake_clock(app: App, fake: QueueFake | RedisFake) -> None:
    start = fake.clock()
    app.dispatch(Signup(n=1))
    [flaky] = fake.drain().of(FlakyTwice)
    first, second, third = flaky.runs
    assert [r.attempt for r in flaky.runs] == [1, 2, 3]
    assert first.delay_secs is not None
    assert 10 <= first.delay_secs < 12.5
    assert second.delay_secs is not None
    assert 20 <= second.delay_secs < 25
    assert first.error == "ConnectionError: smtp down for 1"
    # Each retry ran no earlier than its backoff allowed, by the clock the worker and the driver share
    # (Redis keeps due times in whole milliseconds).
    assert second.at >= first.at + first.delay_secs - 0.001
    assert third.at >= second.at + second.delay_secs - 0.001
    assert fake.clock() - start >= 30


def test_the_same_drain_repeats_exactly_and_the_seed_moves_the_jitter() -> None:
    def delays(seed: int) -> list[float | None]:
        app = build_app()
        with QueueFake(app) as q:
            app.dispatch(Signup(n=1))
            app.dispatch(Signup(n=2))
            return [r.delay_secs for r in q.drain(seed=seed).runs]

    assert delays(0) == delays(0)
    assert delays(0) != delays(1)


def test_the_workers_policy_applies_to_listeners_without_their_own(app: App, fake: QueueFake | RedisFake) -> None:
    app.dispatch(Signup(n=1))
    result = fake.drain(policy=AttemptPolicy(tries=4))
    assert [r.outcome for r in result.of(FlakyTwice)[0].runs] == ["retry", "retry", "done"]  # its own tries(3)
    assert len(result.of(Broken)[0].runs) == 2  # its own tries(2)
    assert len(result.of(Welcome)[0].runs) == 1


def test_named_queues_are_the_only_ones_worked(app: App, fake: QueueFake | RedisFake) -> None:
    app.dispatch(Signup(n=1))
    result = fake.drain(queues=["emails"])
    assert [j.listener_type.rsplit(".", 1)[1] for j in result.jobs] == ["Welcome"]
    assert fake.drivers["redis"].size("low") == 1  # Thank waits: no worker took "low"
    assert fake.drivers["redis"].size("default") == 2


def test_failed_jobs_go_to_the_store_as_a_worker_writes_them(
    app: App, fake: QueueFake | RedisFake, tmp_path: Path
) -> None:
    store = sqlite_failed_store(tmp_path)
    app.dispatch(Signup(n=1))
    result = fake.drain(failed=store)
    [row_] = store.all()
    [record] = result.failed_jobs
    assert (row_.uuid, row_.connection, row_.queue) == (record.uuid, "redis", "default")
    assert (row_.event_name, row_.listener_type) == ("kit.signup", f"{__name__}.Broken")
    assert row_.payload == '{"n":1}'
    assert row_.exception.rstrip().endswith("RuntimeError: broken on 1")
    store.database.close()


class StoreDownOnce:
    """A failed-job store that refuses its first record, as a database that is briefly down would."""

    def __init__(self) -> None:
        self.records: list[FailedJob] = []
        self.refused = 0

    def log(self, job: FailedJob) -> None:
        if not self.refused:
            self.refused += 1
            raise OSError("database is down")
        self.records.append(job)


def test_a_failure_the_store_refuses_comes_back_after_the_visibility_timeout(
    app: App, fake: QueueFake | RedisFake
) -> None:
    start = fake.clock()
    store = StoreDownOnce()
    app.listen(Welcomed, Broken, Mode.queue("redis").on_queue("rare"))
    app.driver("redis").push("rare", Job("kit.welcomed", f"{__name__}.Broken", {"n": 5}, uuid="u-5").to_json())
    result = fake.drain(queues=["rare"], failed=store)
    [job] = result.jobs
    assert [(r.outcome, r.attempt) for r in job.runs] == [("failed", 1), ("failed", 2)]
    assert job.exception is None  # the worker builds MaxAttemptsExceeded for the record; nothing raised it
    assert job.error is not None
    assert job.error.startswith("oxide.errors.MaxAttemptsExceeded: the job was taken 1 time(s)")
    assert fake.clock() - start >= 90  # the reservation ran out before the job came back
    [kept] = store.records
    assert kept.uuid == "u-5"
    assert MaxAttemptsExceeded.__name__ in kept.exception


def test_messages_that_cannot_run_fail_at_once(app: App, fake: QueueFake | RedisFake) -> None:
    driver = app.driver("redis")
    driver.push("junk", "not json at all")
    driver.push("junk", Job("kit.signup", "nobody.Listens", {"n": 1}, uuid="u-x").to_json())
    result = fake.drain(queues=["junk"])
    garbage, unknown = result.jobs
    assert (garbage.status, garbage.event_name, garbage.payload) == ("failed", "", "not json at all")
    assert garbage.error is not None
    assert garbage.error.startswith("JobDecodeError: job is not valid JSON")
    assert (unknown.status, unknown.uuid) == ("failed", "u-x")
    assert isinstance(unknown.exception, ListenerNotRegistered)


class Forever:
    def handle(self, event: Welcomed) -> None:
        STATE["app"].dispatch(Welcomed(n=event.n + 1))


def test_a_listener_that_keeps_pushing_stops_the_drain_with_an_explanation(
    app: App, fake: QueueFake | RedisFake
) -> None:
    app.listen(Welcomed, Forever, Mode.queue("redis").on_queue("loop"))
    app.dispatch(Welcomed(n=0))
    with pytest.raises(AssertionError) as caught:
        fake.drain(queues=["loop"], max_jobs=5)
    message = str(caught.value)
    assert message.startswith("the queues still held jobs after 5 runs (max_jobs=5): does a listener push a job")
    assert len(row("redis", "loop", "kit.welcomed", f"{__name__}.Forever", "done").findall(message)) == 5


def test_assert_all_done_shows_each_failure_with_its_traceback(app: App, fake: QueueFake | RedisFake) -> None:
    app.dispatch(Signup(n=1))
    result = fake.drain()
    with pytest.raises(AssertionError) as caught:
        result.assert_all_done()
    message = str(caught.value)
    assert message.startswith("expected every job to be done, but 1 job is not:\n")
    assert row(
        "redis", "default", "kit.signup", f"{__name__}.Broken", "retry, failed", "RuntimeError: broken on 1"
    ).search(message)
    assert row("redis", "default", "kit.signup", f"{__name__}.FlakyTwice", "retry, retry, done").search(message)
    assert f"--- {__name__}.Broken (" in message
    assert "Traceback (most recent call last):" in message
    assert 'raise RuntimeError(f"broken on {event.n}")' in message
    assert str(result).startswith("4 jobs ran (3 jobs done, 1 job failed):\n")


def test_assert_all_done_passes_when_every_job_succeeded(app: App, fake: QueueFake | RedisFake) -> None:
    app.dispatch(Welcomed(n=1))
    result = fake.drain()
    result.assert_all_done()
    assert [j.status for j in result.jobs] == ["done"]


def test_drain_finds_the_fakes_of_an_app(app: App) -> None:
    with pytest.raises(ValueError, match=r"nothing to drain: no connection of this app is faked"):
        drain(app)
    with QueueFake(app, connections=["redis"]):
        app.dispatch(Welcomed(n=1))
        with pytest.raises(ValueError, match=r"connection 'sync' is not faked: .* \(faked now: redis\)"):
            drain(app, "sync")
        assert [j.status for j in drain(app).jobs] == ["done"]
    assert RUNS == {("Thank", 1): 1}


def test_a_faked_sync_connection_is_drained_by_a_worker_like_any_other(app: App) -> None:
    app.listen(Welcomed, Broken, Mode.queue("sync"))
    with QueueFake(app) as q:
        app.dispatch(Welcomed(n=3))
        assert RUNS == {}  # the sync connection did not run it at dispatch
        result = q.drain("sync")
    [job] = result.jobs
    assert (job.connection, job.status, job.error) == ("sync", "failed", "RuntimeError: broken on 3")
    assert q.drivers["redis"].size("low") == 1  # another connection's job is left alone


class StuckDriver(MemoryDriver):
    """Says it holds a job that can never be taken: a broken fake must not hang the drain."""

    def has_jobs(self, queues: Sequence[str]) -> bool:
        return True

    def ready(self, queues: Sequence[str]) -> bool:
        return False


def test_jobs_that_can_never_be_taken_stop_the_drain_instead_of_hanging_it(app: App) -> None:
    stuck = StuckDriver(app.config.connection("redis"), FakeClock())
    install(app, "redis", stuck)
    try:
        with pytest.raises(
            AssertionError, match=r"connection 'redis' holds jobs in \['emails'\] that no worker can take"
        ):
            drain(app, queues=["emails"])
    finally:
        uninstall(app, "redis", stuck)
