"""A job pushed by ``redis-cli LPUSH`` (another producer, not our code) is taken and decoded."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oxide import App, Event, Mode
from oxide.config import load_config
from oxide.drivers.redis import queue_key
from oxide.wire import Job
from tests.conftest import redis_driver_for, service_missing

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("isolated_cwd")]


@pytest.fixture
def redis_cli(redis_server_url: str) -> Any:
    """Run ``redis-cli -u <test server> ARGS...`` and return its stdout."""
    exe = shutil.which("redis-cli")
    if exe is None:
        service_missing("redis-cli", "install the Redis command-line tools (the redis-tools package)")
    assert exe is not None

    def call(*args: str) -> str:
        done = subprocess.run([exe, "-u", redis_server_url, *args], capture_output=True, text=True, check=True)
        return done.stdout

    return call


def test_a_job_lpushed_by_redis_cli_is_decoded(redis_cli: Any, real_redis: Any, make_queue_names: Any) -> None:
    [queue] = make_queue_names("emails")
    body = (
        '{ "payload": {"user_id": 7, "email": "é@b.c", "tags": ["a", "b"]},\n'
        '  "listener_type": "myapp.listeners.SendWelcomeEmail",\n'
        '  "queued_by": "redis-cli",\n'
        '  "event_name": "auth.user_registered" }'
    )
    assert redis_cli("LPUSH", queue_key(queue), body).strip() == "1"
    delivery = redis_driver_for(real_redis).pop(["empty-" + queue, queue], 1)
    assert delivery is not None
    assert delivery.queue == queue
    job = Job.from_json(delivery.body)
    assert job == Job(
        "auth.user_registered",
        "myapp.listeners.SendWelcomeEmail",
        {"user_id": 7, "email": "é@b.c", "tags": ["a", "b"]},
        extra={"queued_by": "redis-cli"},
    )


def test_several_values_in_one_redis_cli_lpush_are_taken_oldest_first(
    redis_cli: Any, real_redis: Any, make_queue_names: Any
) -> None:
    [queue] = make_queue_names("batch")
    jobs = [Job("e", "l", n).to_json() for n in range(3)]
    assert redis_cli("LPUSH", queue_key(queue), *jobs).strip() == "3"
    driver = redis_driver_for(real_redis)
    taken = [driver.pop([queue], 1) for _ in range(3)]
    assert [Job.from_json(d.body).payload for d in taken if d is not None] == [0, 1, 2]


@dataclass
class UserRegistered(Event):
    event_name = "auth.user_registered"
    user_id: int
    email: str


class SendWelcomeEmail:
    def handle(self, event: UserRegistered) -> None:
        pass


def test_an_app_runs_what_redis_cli_pushed(
    redis_cli: Any, redis_server_url: str, real_redis: Any, make_queue_names: Any, tmp_path: Path
) -> None:
    # real_redis: this test's keys (the job's reservation left after the run) are deleted afterwards.
    [queue] = make_queue_names("app")
    app = App(config=load_config(tmp_path, environ={"QUEUE_CONNECTION": "redis", "REDIS_URL": redis_server_url}))
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue().on_queue(queue))
    body = (
        '{"event_name":"auth.user_registered",'
        '"listener_type":"tests.integration.test_redis_cli_producer.SendWelcomeEmail",'
        '"payload":{"email":"a@b.c","user_id":7}}'
    )
    redis_cli("LPUSH", queue_key(queue), body)
    try:
        delivery = app.driver().pop([queue], 1)
        assert delivery is not None
        _job, registration, event = app.decode(delivery.body)
        assert registration.listener is SendWelcomeEmail
        assert event == UserRegistered(user_id=7, email="a@b.c")
    finally:
        app.close()


def test_redis_cli_reads_back_exactly_the_json_we_wrote(redis_cli: Any, real_redis: Any, make_queue_names: Any) -> None:
    [queue] = make_queue_names("out")
    job = Job("e", "l", {"z": [1, 2.5], "a": None}, uuid="u-1")
    redis_driver_for(real_redis).push(queue, job.to_json())
    assert redis_cli("--raw", "RPOP", queue_key(queue)) == job.to_json() + "\n"
