"""Drivers (SPEC §4): queue names, the sync driver, the redis driver on fakeredis, and redis-py as an extra."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from oxide.config import QUEUE_NAME, ConnectionConfig
from oxide.drivers import Delivery, Driver, check_queue_name, make_driver
from oxide.drivers.redis import KEY_PREFIX, RedisDriver, connect, queue_key
from oxide.drivers.sync import SyncDriver
from oxide.errors import ConfigError, ConnectionUnavailable, OxideError, QueueNameError
from tests.conftest import redis_driver_for

pytestmark = pytest.mark.usefixtures("isolated_cwd")

# -- queue names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "default", "high-priority", "v1.2_emails", "A" * 128, "0", ".", "-", "_"])
def test_valid_queue_names(name: str) -> None:
    assert check_queue_name(name) == name
    assert QUEUE_NAME.fullmatch(name)


@pytest.mark.parametrize(
    "name",
    ["", "A" * 129, "a:b", "a b", "a/b", "a*", "é", "a\n", "\n", "q\x00", "emails,default", "٣"],
)
def test_invalid_queue_names_are_refused(name: str) -> None:
    with pytest.raises(QueueNameError, match=r"invalid queue name .*: use 1 to 128 characters from A-Z, a-z, 0-9"):
        check_queue_name(name)
    assert not QUEUE_NAME.fullmatch(name)


@pytest.mark.parametrize("name", [None, 5, b"bytes", ["q"]])
def test_queue_name_must_be_a_string(name: object) -> None:
    with pytest.raises(QueueNameError, match=re.escape(f"invalid queue name {name!r}")):
        check_queue_name(name)


def test_queue_name_error_is_an_oxide_error_and_a_value_error() -> None:
    assert issubclass(QueueNameError, OxideError)
    assert issubclass(QueueNameError, ValueError)


def test_queue_key_layout() -> None:
    assert queue_key("emails") == "oxide:queue:emails"
    assert KEY_PREFIX == "oxide:queue:"


# -- sync ---------------------------------------------------------------------------------------


def test_sync_driver_runs_each_job_inline_in_order() -> None:
    ran: list[tuple[str, str]] = []
    driver = SyncDriver(ConnectionConfig(name="sync", driver="sync"), lambda queue, body: ran.append((queue, body)))
    driver.push("q", "one")
    driver.push_many("r", ["two", "three"])
    assert ran == [("q", "one"), ("r", "two"), ("r", "three")]
    # nothing persists, so there is nothing to take
    assert driver.size("q") == 0
    assert driver.pop(["q", "r"], 0.01) is None
    assert driver.consumable is False
    driver.close()


def test_sync_driver_lets_the_listener_exception_through_unchanged() -> None:
    boom = RuntimeError("listener failed")

    def runner(queue: str, body: str) -> None:
        raise boom

    driver = SyncDriver(ConnectionConfig(name="sync", driver="sync"), runner)
    with pytest.raises(RuntimeError) as info:
        driver.push("q", "body")
    assert info.value is boom


def test_make_driver_builds_the_configured_driver() -> None:
    sync = make_driver(ConnectionConfig(name="inline", driver="sync"), lambda q, b: None)
    assert isinstance(sync, SyncDriver)
    assert sync.name == "inline"


# -- redis on fakeredis ----------------------------------------------------------------------------


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Iterator[Any]:
    c = fakeredis.FakeRedis(server=server)
    yield c
    c.close()


@pytest.fixture
def driver(client: Any) -> RedisDriver:
    return redis_driver_for(client)


CONTRACT_METHODS = ("push", "push_many", "pop", "size", "close")


@pytest.mark.parametrize("cls", [SyncDriver, RedisDriver])
def test_drivers_have_the_contract_methods_with_its_parameters(cls: type) -> None:
    for method in CONTRACT_METHODS:
        expected = list(inspect.signature(getattr(Driver, method)).parameters)
        assert list(inspect.signature(getattr(cls, method)).parameters) == expected, method


def test_redis_driver_identity(driver: RedisDriver) -> None:
    assert driver.consumable is True
    assert driver.name == "redis"


def test_push_is_lpush_onto_the_queue_list_plus_a_wake_up_token_when_it_was_empty(
    driver: RedisDriver, client: Any
) -> None:
    driver.push("emails", "first")
    # Reservations (the default) wake idle workers through the queue's :notify list: a worker
    # sleeps only after finding every queue empty, so only the push that fills an empty queue wakes one.
    assert sorted(client.keys("*")) == [b"oxide:queue:emails", b"oxide:queue:emails:notify"]
    assert client.llen("oxide:queue:emails:notify") == 1
    driver.push("emails", "second")
    driver.push_many("emails", ["third", "fourth"])
    assert client.lrange("oxide:queue:emails", 0, -1) == [b"fourth", b"third", b"second", b"first"]
    assert client.llen("oxide:queue:emails:notify") == 1
    client.delete("oxide:queue:emails")
    driver.push_many("emails", ["fifth", "sixth"])
    assert client.llen("oxide:queue:emails:notify") == 2


def test_a_worker_woken_passes_the_wake_up_on_while_jobs_remain(driver: RedisDriver, client: Any) -> None:
    driver.push_many("emails", ["first", "second"])
    client.delete("oxide:queue:emails:notify")
    # Woken from its wait (pass_on), the worker takes one job and, a job remaining, wakes another.
    assert [job.body for job in driver.scripts.reserve(["emails"], pass_on=True)] == [b"first"]
    assert client.llen("oxide:queue:emails:notify") == 1
    client.delete("oxide:queue:emails:notify")
    # The last job taken: nobody else to wake; and a busy worker's take never wakes anyone.
    assert [job.body for job in driver.scripts.reserve(["emails"], pass_on=True)] == [b"second"]
    driver.push_many("emails", ["third", "fourth"])
    client.delete("oxide:queue:emails:notify")
    assert [job.body for job in driver.scripts.ack_and_reserve((), ["emails"], migrate=False)[1]] == [b"third"]
    assert client.llen("oxide:queue:emails:notify") == 0


def test_without_reservations_push_is_a_plain_lpush(client: Any) -> None:
    driver = redis_driver_for(client, visibility_timeout_secs=0)
    driver.push("emails", "first")
    driver.push_many("emails", ["second", "third"])
    assert client.lrange("oxide:queue:emails", 0, -1) == [b"third", b"second", b"first"]
    assert client.keys("*") == [b"oxide:queue:emails"]
    assert driver.pop(["emails"], 0.01) == Delivery("emails", b"first")
    assert client.llen("oxide:queue:emails") == 2  # BRPOP: the job left Redis with the reply


def test_each_queue_is_fifo(driver: RedisDriver) -> None:
    for body in ("1", "2", "3"):
        driver.push("q", body)
    taken = [driver.pop(["q"], 0.01) for _ in range(4)]
    assert taken == [Delivery("q", b"1"), Delivery("q", b"2"), Delivery("q", b"3"), None]


def test_push_many_keeps_order_in_one_call(driver: RedisDriver, client: Any) -> None:
    driver.push("q", "0")
    driver.push_many("q", ["1", "2", "3"])
    driver.push_many("q", [])
    assert driver.size("q") == 4
    assert [driver.pop(["q"], 0.01) for _ in range(4)] == [Delivery("q", str(i).encode()) for i in range(4)]


def test_pop_serves_the_first_non_empty_queue_in_priority_order(driver: RedisDriver) -> None:
    driver.push("low", "l1")
    driver.push("default", "d1")
    driver.push("default", "d2")
    order = ["high", "default", "low"]
    assert driver.pop(order, 0.01) == Delivery("default", b"d1")
    driver.push("high", "h1")
    assert driver.pop(order, 0.01) == Delivery("high", b"h1")
    assert driver.pop(order, 0.01) == Delivery("default", b"d2")
    assert driver.pop(order, 0.01) == Delivery("low", b"l1")
    assert driver.pop(order, 0.01) is None


def test_pop_ignores_queues_not_listed(driver: RedisDriver) -> None:
    driver.push("other", "x")
    assert driver.pop(["mine"], 0.01) is None
    assert driver.size("other") == 1


def test_size_counts_waiting_jobs(driver: RedisDriver) -> None:
    assert driver.size("q") == 0
    driver.push_many("q", ["a", "b"])
    assert driver.size("q") == 2
    assert driver.size("q2") == 0


def test_bodies_are_kept_byte_for_byte(driver: RedisDriver) -> None:
    body = '{"event_name":"é","listener_type":"l","payload":"😀\\u0000"}'
    driver.push("q", body)
    delivery = driver.pop(["q"], 0.01)
    assert delivery is not None
    assert delivery.body == body.encode("utf-8")


def test_queue_names_with_dots_and_dashes_come_back_whole(driver: RedisDriver) -> None:
    driver.push("a.b-c_d", "x")
    assert driver.pop(["a.b-c_d"], 0.01) == Delivery("a.b-c_d", b"x")


def test_a_decoding_client_works_too(server: fakeredis.FakeServer) -> None:
    # A client built with decode_responses=True hands back str; deliveries are bytes all the same.
    driver = redis_driver_for(fakeredis.FakeRedis(server=server, decode_responses=True))
    driver.push("q", "é")
    assert driver.pop(["q"], 0.01) == Delivery("q", "é".encode())


def test_a_lost_server_is_connection_unavailable_with_the_password_hidden(
    server: fakeredis.FakeServer, client: Any
) -> None:
    driver = redis_driver_for(client, name="main", url="redis://:hunter2@cache:6379/0")
    server.connected = False
    for call in (lambda: driver.push("q", "x"), lambda: driver.push_many("q", ["x"])):
        with pytest.raises(ConnectionUnavailable, match=r"redis connection 'main' \(redis://:\*\*\*@cache:6379/0\)"):
            call()
    with pytest.raises(ConnectionUnavailable) as info:
        driver.pop(["q"], 0.01)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConnectionUnavailable):
        driver.size("q")


# -- redis-py is an extra ---------------------------------------------------------------------------


@pytest.fixture
def without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import redis`` fail as it does when the extra is not installed."""
    for name in list(sys.modules):
        if name == "redis" or name.startswith("redis."):
            monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError on import


def test_missing_redis_py_is_a_config_error_naming_the_extra(without_redis_py: None) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^the redis driver needs redis-py, which is not installed: pip install 'oxide-queue\[redis\]'$",
    ):
        connect("redis://127.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"oxide-queue\[redis\]"):
        RedisDriver(ConnectionConfig(name="redis", driver="redis"))


def test_missing_redis_py_surfaces_when_the_connection_is_used(without_redis_py: None, tmp_path: Any) -> None:
    from oxide import App
    from oxide.config import load_config
    from oxide.wire import Job

    app = App(config=load_config(tmp_path, environ={"QUEUE_CONNECTION": "redis"}))
    with pytest.raises(ConfigError, match=r"pip install 'oxide-queue\[redis\]'"):
        app.push(None, None, Job("e", "l", 1))


def test_importing_oxide_does_not_import_redis_py() -> None:
    code = (
        "import sys, oxide, oxide.app, oxide.queue, oxide.drivers, oxide.drivers.sync, oxide.drivers.redis, oxide.config\n"
        "loaded = sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.'))\n"
        "assert not loaded, loaded\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_a_bad_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"bad redis URL 'redis://:\*\*\*@host:port/0'"):
        connect("redis://:hunter2@host:port/0")


def test_connect_makes_a_client_without_hidden_retries() -> None:
    client = connect("redis://127.0.0.1:1/0", read_timeout_secs=15)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 15
    assert kwargs["retry"].get_retries() == 0
    client.close()


def test_an_unreachable_server_is_connection_unavailable(tmp_path: Any) -> None:
    # Nothing listens on port 1: the connection is refused at once, no server needed.
    from oxide import App
    from oxide.config import load_config
    from oxide.wire import Job

    env = {"QUEUE_CONNECTION": "redis", "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    app = App(config=load_config(tmp_path, environ=env))
    with pytest.raises(
        ConnectionUnavailable, match=r"redis connection 'redis' \(redis://:\*\*\*@127\.0\.0\.1:1/0\)"
    ) as info:
        app.push(None, None, Job("e", "l", 1))
    assert "hunter2" not in str(info.value)
    app.close()


@pytest.mark.parametrize("visibility", [90, 0])
def test_a_take_with_no_wait_returns_at_once(client: Any, visibility: int) -> None:
    driver = redis_driver_for(client, visibility_timeout_secs=visibility)
    assert driver.pop(["a", "b"], 0) is None  # would block for ever if 0 reached BRPOP
    driver.push("b", "x")
    delivery = driver.pop(["a", "b"], 0)
    assert delivery is not None
    assert (delivery.queue, delivery.body) == ("b", b"x")


@pytest.mark.parametrize("visibility", [90, 0])
def test_a_take_of_no_jobs_only_acknowledges_and_takes_nothing(client: Any, visibility: int) -> None:
    driver = redis_driver_for(client, visibility_timeout_secs=visibility)
    driver.push("q", "first")
    driver.push("q", "second")
    done = driver.pop(["q"], 0.01)
    assert done is not None
    acked, taken = driver.take(["q"], 0, limit=0, done=[done])
    assert (acked, taken) == ([True], [])
    assert driver.size("q") == 1  # "second" is still waiting: a settle on the way out must not swallow it


def test_reserve_works_out_each_queue_list_once_and_keeps_a_bounded_number_of_them() -> None:
    from oxide.drivers.reservations import Reservations

    client = fakeredis.FakeRedis()
    res = Reservations(client, visibility_ms=60_000)
    client.lpush("oxide:queue:b", b"job-b")
    # The same queues, in another order, are another priority: the layout follows the order given.
    assert res.reserve(["a", "b"])[0].queue == "b"
    client.lpush("oxide:queue:a", b"job-a")
    client.lpush("oxide:queue:b", b"job-b2")
    assert res.reserve(["b", "a"])[0].body == b"job-b2"
    assert res.reserve(["a", "b"])[0].body == b"job-a"
    # Worked out once: the same keys list serves every call with the same queues.
    assert res._layout(["a", "b"])[0] is res._layout(("a", "b"))[0]
    sizes = []
    for n in range(200):
        assert res.reserve([f"q{n}", "a"]) == []
        sizes.append(len(res._layouts))
    assert max(sizes) == 64  # at most 64 queue lists are kept, and that many are
    # An acknowledgement names its queue by position in the list of this call, after many others.
    client.lpush("oxide:queue:b", b"job-b3")
    (job,) = res.reserve(["a", "b"])
    held, _ = res.ack_and_reserve([job], ["a", "b"], limit=0)
    assert held == [True]
    assert client.zcard("oxide:queue:b:reserved") == 2  # job-b and job-b2 are still held, job-b3 is not


def test_a_delivery_made_for_a_take_is_the_delivery_its_constructor_makes() -> None:
    import dataclasses

    from oxide.drivers import Delivery, delivered

    receipt = object()
    made, fast = Delivery("q", b"body", receipt, 2), delivered("q", b"body", receipt, 2)
    assert {f.name: getattr(fast, f.name) for f in dataclasses.fields(Delivery)} == {
        f.name: getattr(made, f.name) for f in dataclasses.fields(Delivery)
    }
    assert (fast == made, repr(fast) == repr(made), hash(fast) == hash(made)) == (True, True, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.expirations = 3  # type: ignore[misc]
