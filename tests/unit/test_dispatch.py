"""Events, listeners and dispatch (SPEC §5): inline vs queued, connections, queues, order, async, names."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest

import oxide.queue
from oxide import App, Event, Mode
from oxide.app import current_app
from oxide.config import load_config
from oxide.errors import ConfigError, JobDecodeError, JobEncodeError, ListenerNotRegistered, OxideError, QueueNameError
from oxide.events import listener_type_of
from oxide.wire import Job

pytestmark = pytest.mark.usefixtures("isolated_cwd")

# -- events and listeners used across the tests ---------------------------------------------------

calls: list[tuple[str, Any]] = []


@dataclass
class UserRegistered(Event):
    event_name = "auth.user_registered"
    user_id: int
    email: str


@dataclass
class OrderShipped(Event):
    event_name = "shop.order_shipped"
    order_id: int


@dataclass
class Unnamed(Event):
    n: int


class SendWelcomeEmail:
    def handle(self, event: UserRegistered) -> None:
        calls.append(("SendWelcomeEmail", event))


class AuditLog:
    def handle(self, event: Event) -> None:
        calls.append(("AuditLog", event))


class Metrics:
    def handle(self, event: Event) -> None:
        calls.append(("Metrics", event))


class AsyncNotifier:
    async def handle(self, event: Event) -> None:
        await asyncio.sleep(0)
        calls.append(("AsyncNotifier", event))


class ListenerFailed(Exception):
    pass


class Failing:
    error = ListenerFailed("from the listener")

    def handle(self, event: Event) -> None:
        raise Failing.error


class AsyncFailing:
    error = ListenerFailed("from the async listener")

    async def handle(self, event: Event) -> None:
        await asyncio.sleep(0)
        raise AsyncFailing.error


class Outer:
    class Inner:
        def handle(self, event: Event) -> None:
            calls.append(("Outer.Inner", event))


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clear_calls() -> Iterator[None]:
    calls.clear()
    yield
    calls.clear()


@pytest.fixture
def redis_server(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """Every redis connection an App opens goes to this private fake server."""
    server = fakeredis.FakeServer()
    monkeypatch.setattr("oxide.drivers.redis.connect", lambda url, **_: fakeredis.FakeRedis(server=server))
    return server


@pytest.fixture
def inspect_redis(redis_server: fakeredis.FakeServer) -> Iterator[Any]:
    client = fakeredis.FakeRedis(server=redis_server)
    yield client
    client.close()


QUEUE_TOML = """
default = "${QUEUE_CONNECTION:-sync}"

[connections.sync]
driver = "sync"

[connections.redis]
driver = "redis"
queue = "default"

[connections.bulk]
driver = "redis"
queue = "jobs"
"""


def make_app(tmp_path: Path, **env: str) -> App:
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "queue.toml").write_text(QUEUE_TOML)
    return App(config=load_config(config_dir, environ=env))


def jobs_on(client: Any, queue: str) -> list[Job]:
    """The jobs waiting on ``queue``, oldest first."""
    return [Job.from_json(body) for body in reversed(client.lrange(f"oxide:queue:{queue}", 0, -1))]


EVENT = UserRegistered(user_id=7, email="a@b.c")


# -- inline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, Mode.sync()])
def test_inline_listener_runs_at_dispatch_with_the_event_itself(mode: Mode | None, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, mode)
    assert calls == []
    app.dispatch(EVENT)
    assert calls == [("SendWelcomeEmail", EVENT)]
    assert calls[0][1] is EVENT


def test_inline_listener_exception_reaches_the_caller_unchanged(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, Failing)
    with pytest.raises(ListenerFailed) as info:
        app.dispatch(EVENT)
    assert info.value is Failing.error


def test_a_listener_instance_is_used_as_given(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Collector:
        def handle(self, event: Event) -> None:
            seen.append((self, event))

    collector = Collector()
    app = make_app(tmp_path)
    app.listen(UserRegistered, collector)
    app.dispatch(EVENT)
    app.dispatch(EVENT)
    assert seen == [(collector, EVENT), (collector, EVENT)]


def test_a_listener_class_is_instantiated_per_event(tmp_path: Path) -> None:
    instances: list[object] = []

    class PerEvent:
        def handle(self, event: Event) -> None:
            instances.append(self)

    app = make_app(tmp_path)
    app.listen(UserRegistered, PerEvent)
    app.dispatch(EVENT)
    app.dispatch(EVENT)
    assert len(instances) == 2
    assert instances[0] is not instances[1]


def test_dispatch_without_listeners_does_nothing(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(OrderShipped, AuditLog, Mode.queue("redis"))
    app.dispatch(EVENT)
    assert calls == []
    assert inspect_redis.keys("*") == []


# -- queued ---------------------------------------------------------------------------------------


def test_queued_listener_becomes_a_job_on_its_connection(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    app.dispatch(EVENT)
    assert calls == []  # not run: queued
    [job] = jobs_on(inspect_redis, "default")
    assert job.event_name == "auth.user_registered"
    assert job.listener_type == "tests.unit.test_dispatch.SendWelcomeEmail"
    assert job.payload == {"user_id": 7, "email": "a@b.c"}
    assert job.uuid is not None
    assert str(uuid.UUID(job.uuid)) == job.uuid
    body = inspect_redis.lindex("oxide:queue:default", 0).decode()
    assert body.startswith(
        '{"event_name":"auth.user_registered","listener_type":"tests.unit.test_dispatch.SendWelcomeEmail",'
        '"payload":{"email":"a@b.c","user_id":7},"uuid":"'
    )


def test_each_dispatch_gets_its_own_uuid(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    for _ in range(3):
        app.dispatch(EVENT)
    assert len({job.uuid for job in jobs_on(inspect_redis, "default")}) == 3


def test_on_queue_sends_jobs_to_that_queue(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis").on_queue("emails"))
    app.dispatch(EVENT)
    assert [j.listener_type for j in jobs_on(inspect_redis, "emails")] == ["tests.unit.test_dispatch.SendWelcomeEmail"]
    assert jobs_on(inspect_redis, "default") == []


def test_without_on_queue_the_connections_queue_is_used(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("bulk"))
    app.dispatch(EVENT)
    assert len(jobs_on(inspect_redis, "jobs")) == 1


def test_mode_queue_without_a_name_uses_the_default_connection(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path, QUEUE_CONNECTION="bulk")
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue())
    app.dispatch(EVENT)
    assert calls == []
    assert len(jobs_on(inspect_redis, "jobs")) == 1


def test_mode_queue_on_a_sync_default_runs_inline_through_the_wire(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # default: sync
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue().on_queue("emails"))
    app.dispatch(EVENT)
    # The sync driver runs the job at push: the listener gets the event as read back from the wire.
    assert calls == [("SendWelcomeEmail", EVENT)]
    assert calls[0][1] is not EVENT


def test_sync_connection_lets_the_listener_exception_through_unchanged(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, Failing, Mode.queue("sync"))
    with pytest.raises(ListenerFailed) as info:
        app.dispatch(EVENT)
    assert info.value is Failing.error


def test_unknown_connection_is_an_error_at_listen(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(
        ConfigError, match=r"unknown queue connection 'kafka'; defined in queue\.toml: bulk, redis, sync"
    ):
        app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("kafka"))
    assert app.registrations == []


def test_unrepresentable_payload_is_refused_before_anything_is_pushed(tmp_path: Path, inspect_redis: Any) -> None:
    @dataclass
    class Measured(Event):
        value: float

    app = make_app(tmp_path)
    app.listen(Measured, AuditLog, Mode.queue("redis"))
    app.listen(Measured, Metrics, Mode.queue("redis"))
    with pytest.raises(JobEncodeError, match=r"^payload\['value'\]: nan cannot be written as JSON"):
        app.dispatch(Measured(value=float("nan")))
    assert inspect_redis.keys("*") == []


# -- order ----------------------------------------------------------------------------------------


def test_listeners_run_in_registration_order(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, Metrics)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("sync"))
    app.listen(UserRegistered, AuditLog)
    app.dispatch(EVENT)
    assert [name for name, _ in calls] == ["Metrics", "SendWelcomeEmail", "AuditLog"]


def test_queued_jobs_are_pushed_in_registration_order(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, Metrics, Mode.queue("redis"))
    app.listen(UserRegistered, AuditLog, Mode.queue("redis"))
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    app.dispatch(EVENT)
    assert [j.listener_type.rsplit(".", 1)[1] for j in jobs_on(inspect_redis, "default")] == [
        "Metrics",
        "AuditLog",
        "SendWelcomeEmail",
    ]


def test_registrations_are_listed_in_the_order_listen_was_called(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AuditLog)
    app.listen(OrderShipped, Metrics)
    app.listen(UserRegistered, SendWelcomeEmail)
    assert [r.listener for r in app.registrations] == [AuditLog, Metrics, SendWelcomeEmail]


# -- async listeners ------------------------------------------------------------------------------


def test_async_handle_runs_to_completion_at_dispatch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AsyncNotifier)
    app.dispatch(EVENT)
    assert calls == [("AsyncNotifier", EVENT)]


def test_async_handle_runs_when_dispatch_is_called_inside_a_running_loop(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AsyncNotifier)

    async def main() -> None:
        app.dispatch(EVENT)
        assert calls == [("AsyncNotifier", EVENT)]  # finished before dispatch returned

    asyncio.run(main())
    assert len(calls) == 1


def test_async_handle_through_the_sync_driver(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AsyncNotifier, Mode.queue("sync"))
    app.dispatch(EVENT)
    assert calls == [("AsyncNotifier", EVENT)]


@pytest.mark.parametrize("in_loop", [False, True])
def test_async_listener_exception_reaches_the_caller_unchanged(in_loop: bool, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AsyncFailing)

    async def main() -> None:
        app.dispatch(EVENT)

    def call() -> None:
        if in_loop:
            asyncio.run(main())
        else:
            app.dispatch(EVENT)

    with pytest.raises(ListenerFailed) as info:
        call()
    assert info.value is AsyncFailing.error


def test_async_listeners_from_several_threads(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, AsyncNotifier)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_dispatch_in_loop(app))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 4


async def _dispatch_in_loop(app: App) -> None:
    app.dispatch(EVENT)


def test_async_listeners_dispatched_from_several_threads_without_a_loop(tmp_path: Path) -> None:
    # A threaded web server dispatches from many threads at once, none running an event loop.
    class Slow:
        async def handle(self, event: UserRegistered) -> None:
            await asyncio.sleep(0.01)  # holds the loop across an await, so that dispatches overlap
            calls.append(("Slow", event.user_id))

    app = make_app(tmp_path)
    app.listen(UserRegistered, Slow)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(user_id: int) -> None:
        start.wait()
        try:
            app.dispatch(UserRegistered(user_id=user_id, email="x"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(user_id for _, user_id in calls) == list(range(8))


# -- names on the wire ------------------------------------------------------------------------------


def test_listener_type_is_module_dot_qualname() -> None:
    class Local:
        def handle(self, event: Event) -> None: ...

    assert listener_type_of(SendWelcomeEmail) == "tests.unit.test_dispatch.SendWelcomeEmail"
    assert listener_type_of(SendWelcomeEmail()) == "tests.unit.test_dispatch.SendWelcomeEmail"
    assert listener_type_of(Outer.Inner) == "tests.unit.test_dispatch.Outer.Inner"
    assert listener_type_of(Local) == (
        "tests.unit.test_dispatch.test_listener_type_is_module_dot_qualname.<locals>.Local"
    )


def test_nested_listener_class_goes_through_the_wire(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, Outer.Inner, Mode.queue("redis"))
    app.dispatch(EVENT)
    [job] = jobs_on(inspect_redis, "default")
    assert job.listener_type == "tests.unit.test_dispatch.Outer.Inner"
    _job, registration, event = app.decode(job.to_json())
    assert registration.listener is Outer.Inner
    assert event == EVENT


def test_event_name_defaults_to_module_dot_qualname() -> None:
    assert Unnamed.event_name == "tests.unit.test_dispatch.Unnamed"
    assert UserRegistered.event_name == "auth.user_registered"


@pytest.mark.parametrize("bad", ["", 5, b"name"])
def test_event_name_must_be_a_non_empty_string(bad: object) -> None:
    with pytest.raises(TypeError, match=r"event_name must be a non-empty string"):

        class Bad(Event):
            event_name = bad  # type: ignore[assignment]


def test_payload_is_the_dataclass_fields() -> None:
    assert EVENT.to_payload() == {"user_id": 7, "email": "a@b.c"}
    assert UserRegistered.from_payload({"user_id": 7, "email": "a@b.c"}) == EVENT


def test_non_dataclass_event_must_override_to_payload() -> None:
    class Plain(Event):
        pass

    with pytest.raises(TypeError, match="Plain is not a dataclass: decorate it or override to_payload"):
        Plain().to_payload()


def test_overridden_payload_methods_are_used_on_the_wire(tmp_path: Path) -> None:
    class Ping(Event):
        event_name = "ping"

        def __init__(self, seq: int) -> None:
            self.seq = seq

        def to_payload(self) -> Any:
            return [self.seq]

        @classmethod
        def from_payload(cls, payload: Any) -> Ping:
            return cls(payload[0])

    received: list[int] = []

    class Pong:
        def handle(self, event: Ping) -> None:
            received.append(event.seq)

    app = make_app(tmp_path)
    app.listen(Ping, Pong, Mode.queue("sync"))
    app.dispatch(Ping(3))
    assert received == [3]


# -- listen's checks -------------------------------------------------------------------------------


def test_listen_checks_its_arguments(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(OxideError, match="is not an Event subclass"):
        app.listen(object, AuditLog)  # type: ignore[arg-type]
    with pytest.raises(OxideError, match="has no handle"):
        app.listen(UserRegistered, object)
    with pytest.raises(OxideError, match="mode must be a Mode"):
        app.listen(UserRegistered, AuditLog, "queue")  # type: ignore[arg-type]
    app.listen(UserRegistered, AuditLog)
    with pytest.raises(
        OxideError, match=r"tests\.unit\.test_dispatch\.AuditLog already listens to 'auth\.user_registered'"
    ):
        app.listen(UserRegistered, AuditLog, Mode.queue("redis"))
    assert len(app.registrations) == 1


# -- Mode -----------------------------------------------------------------------------------------


def test_mode_values() -> None:
    assert Mode.sync() == Mode()
    assert not Mode.sync().queued
    queued = Mode.queue("redis").on_queue("emails")
    assert (queued.queued, queued.connection, queued.queue_name) == (True, "redis", "emails")
    assert Mode.queue().connection is None
    assert Mode.queue().tries(3).backoff(2).timeout(1.5).delay(0) == Mode(
        queued=True, max_tries=3, backoff_secs=2.0, timeout_secs=1.5, delay_secs=0.0
    )


def test_mode_is_immutable_and_builders_copy() -> None:
    base = Mode.queue("redis")
    base.on_queue("emails")
    assert base.queue_name is None


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Mode.sync().on_queue("q"), OxideError, r"Mode\.on_queue\(\) applies to queued listeners"),
        (lambda: Mode.sync().tries(2), OxideError, r"Mode\.tries\(\) applies to queued listeners"),
        (lambda: Mode.queue(""), OxideError, "connection must be a non-empty string or None"),
        (lambda: Mode.queue().on_queue("a:b"), QueueNameError, "invalid queue name 'a:b'"),
        (lambda: Mode.queue().tries(0), OxideError, "expected a whole number >= 1, got 0"),
        (lambda: Mode.queue().tries(1.5), OxideError, "expected a whole number >= 1, got 1.5"),
        (lambda: Mode.queue().backoff(-1), OxideError, "expected a finite number of seconds >= 0, got -1"),
        (lambda: Mode.queue().delay(float("inf")), OxideError, "finite number of seconds"),
        (lambda: Mode.queue().timeout(0), OxideError, "expected seconds > 0, got 0"),
        (lambda: Mode.queue().timeout(True), OxideError, "finite number of seconds"),
    ],
)
def test_mode_refuses_bad_settings(build: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()


# -- push, decode ----------------------------------------------------------------------------------


def test_push_uses_the_default_connection_and_queue(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path, QUEUE_CONNECTION="redis")
    app.push(None, None, Job("e", "l", 1))
    app.push("bulk", "other", Job("e", "l", 2))
    app.push_many("redis", None, [Job("e", "l", 3), Job("e", "l", 4)])
    assert [j.payload for j in jobs_on(inspect_redis, "default")] == [1, 3, 4]
    assert [j.payload for j in jobs_on(inspect_redis, "other")] == [2]


@pytest.mark.parametrize("queue", ["", "a:b", "x" * 129])
def test_push_refuses_bad_queue_names(queue: str, tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path, QUEUE_CONNECTION="redis")
    with pytest.raises(QueueNameError, match=re.escape(f"invalid queue name {queue!r}")):
        app.push(None, queue, Job("e", "l", 1))
    assert inspect_redis.keys("*") == []


def test_push_refuses_an_unknown_connection(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(ConfigError, match="unknown queue connection 'nope'"):
        app.push("nope", None, Job("e", "l", 1))


def test_oxide_queue_push_uses_the_current_app(tmp_path: Path, inspect_redis: Any) -> None:
    app = make_app(tmp_path, QUEUE_CONNECTION="redis")
    assert current_app() is app
    oxide.queue.push(None, "custom", Job("e", "l", {"from": "script"}))
    oxide.queue.push_many("redis", "custom", [Job("e", "l", 2)])
    assert [j.payload for j in jobs_on(inspect_redis, "custom")] == [{"from": "script"}, 2]


def test_decode_finds_the_registration_named_by_the_job(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    job = Job("auth.user_registered", "tests.unit.test_dispatch.SendWelcomeEmail", {"user_id": 1, "email": "e"})
    decoded, registration, event = app.decode(job.to_json().encode())
    assert decoded == job
    assert registration.listener is SendWelcomeEmail
    assert event == UserRegistered(user_id=1, email="e")


def test_decode_never_imports_what_the_wire_names(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(
        ListenerNotRegistered, match=r"no listener 'os\.system' is registered for event 'auth\.user_registered'"
    ):
        app.decode(Job("auth.user_registered", "os.system", {}).to_json())


def test_decode_reports_a_payload_that_does_not_fit_the_event(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    job = Job("auth.user_registered", "tests.unit.test_dispatch.SendWelcomeEmail", {"nope": 1})
    with pytest.raises(JobDecodeError, match=r"payload of 'auth\.user_registered' does not fit UserRegistered"):
        app.decode(job.to_json())


# -- dispatch_many ---------------------------------------------------------------------------------


def test_dispatch_many_pushes_each_queue_once_in_order_with_the_wire_form_of_dispatch(
    tmp_path: Path, inspect_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    calls: list[tuple[str, int]] = []
    driver = app.driver("redis")
    real_push_many = driver.push_many

    def counting(queue: str, bodies: Any) -> None:
        calls.append((queue, len(bodies)))
        real_push_many(queue, bodies)

    monkeypatch.setattr(driver, "push_many", counting)
    app.dispatch_many([UserRegistered(user_id=n, email=f"{n}@b.c") for n in range(5)])
    assert calls == [("default", 5)]  # one bulk push, one round trip
    app.dispatch(UserRegistered(user_id=5, email="5@b.c"))
    jobs = jobs_on(inspect_redis, "default")
    assert [j.payload["user_id"] for j in jobs] == [0, 1, 2, 3, 4, 5]
    shape = {(j.event_name, j.listener_type, tuple(sorted(j.payload)), j.uuid is not None) for j in jobs}
    assert len(shape) == 1  # the same wire form as dispatch, uuid included
    assert len({j.uuid for j in jobs}) == 6


def test_dispatch_many_refuses_an_unrepresentable_payload_before_anything_is_pushed(
    tmp_path: Path, inspect_redis: Any
) -> None:
    app = make_app(tmp_path)
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis"))
    with pytest.raises(JobEncodeError):
        app.dispatch_many([UserRegistered(user_id=1, email="a"), UserRegistered(user_id=2**70, email="b")])
    assert jobs_on(inspect_redis, "default") == []
