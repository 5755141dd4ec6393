"""Jobs LPUSHed by hand, as a Rust producer or redis-cli would, are read back equal (SPEC §4)."""

from __future__ import annotations

import json

import fakeredis
from hypothesis import given
from hypothesis import strategies as st

from oxide.drivers.redis import queue_key
from oxide.wire import Job
from tests.conftest import redis_driver_for
from tests.jsonvalues import hand_written, jobs, same_job


@given(st.data())
def test_hand_written_job_is_taken_and_read_back_equal(data: st.DataObject) -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    driver = redis_driver_for(client)
    job = data.draw(jobs())
    text = data.draw(hand_written(job))
    client.lpush(queue_key("incoming"), text.encode("utf-8"))
    delivery = driver.pop(["other", "incoming"], 1)
    assert delivery is not None
    assert delivery.queue == "incoming"
    assert delivery.body == text.encode("utf-8")  # the driver hands over the bytes untouched
    read = Job.from_json(delivery.body)
    assert same_job(read, job)
    assert read.to_json() == job.to_json()


@given(st.data())
def test_unknown_keys_from_another_producer_survive_a_round_trip(data: st.DataObject) -> None:
    job = data.draw(jobs())
    extra = data.draw(
        st.dictionaries(
            st.sampled_from(["trace_id", "delay_until", "queued_at", "tenant", "Uuid", "ATTEMPTS"]),
            st.integers(0, 10**6) | st.text(max_size=5) | st.none(),
            min_size=1,
        )
    )
    job = job.replace(extra={**job.extra, **extra})
    read = Job.from_json(data.draw(hand_written(job)))
    assert same_job(read, job)
    # Written again, our own form keeps every key: another reader downstream loses nothing.
    assert set(json.loads(read.to_json())) == {"event_name", "listener_type", "payload"} | _optional(job) | set(
        job.extra
    )


def _optional(job: Job) -> set[str]:
    return {name for name, value in (("uuid", job.uuid), ("attempts", job.attempts)) if value is not None}


def test_a_job_in_rust_serde_json_form_is_read() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    body = '{"event_name":"auth.user_registered","listener_type":"myapp.listeners.SendWelcomeEmail","payload":{"email":"a@b.c","user_id":7}}'
    client.lpush(queue_key("emails"), body)
    delivery = redis_driver_for(client).pop(["emails"], 1)
    assert delivery is not None
    assert Job.from_json(delivery.body) == Job(
        "auth.user_registered", "myapp.listeners.SendWelcomeEmail", {"email": "a@b.c", "user_id": 7}
    )
