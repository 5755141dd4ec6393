"""Parking: failures the store refuses wait in Redis or a spool file, and move in once it answers."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oxide.db import DatabaseError
from oxide.failed import FailedJob, StoredFailedJob
from oxide.failed.parking import (
    ParkingError,
    ParkingProvider,
    RedisParking,
    SpoolParking,
    decode_record,
    encode_record,
)

WHEN = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def failure(uuid: str, queue: str = "emails") -> FailedJob:
    return FailedJob(uuid, "redis", queue, "auth.user_registered", "app.L", '{"a":1}', "boom", WHEN)


class FakeStore:
    """An in-memory failed_jobs table that can be switched off; idempotent on uuid like the real one."""

    def __init__(self) -> None:
        self.rows: dict[str, FailedJob] = {}
        self.down = False
        self.refused: set[str] = set()  # uuids refused even when up
        self.writes = 0

    def log(self, job: FailedJob) -> None:
        if self.down or job.uuid in self.refused:
            raise DatabaseError("database 'sqlite': database is locked")
        self.writes += 1
        self.rows.setdefault(job.uuid, job)

    def all(self) -> Sequence[StoredFailedJob]:
        return [StoredFailedJob(**dataclasses.asdict(j), id=i) for i, j in enumerate(self.rows.values(), 1)]

    def find(self, ids: Sequence[int]) -> Sequence[StoredFailedJob]:
        return [r for r in self.all() if r.id in ids]

    def forget(self, job_id: int) -> bool:
        return False

    def flush(self) -> int:
        count, self.rows = len(self.rows), {}
        return count

    def flush_parked(self) -> int:
        return 0


def test_a_record_survives_json_exactly_even_with_surrogates() -> None:
    job = dataclasses.replace(failure("u"), exception="bad \udcff byte, nul \x00, 🎉", payload="raw \ud800")
    line = encode_record(job)
    assert line.isascii()
    assert "\n" not in line
    assert decode_record(line) == job


def test_redis_parking_keeps_records_per_queue_and_moves_the_oldest_first(fake_redis: Any) -> None:
    parking = RedisParking(fake_redis)
    for uuid in ("1", "2"):
        parking.park(failure(uuid, queue="emails"))
    parking.park(failure("3", queue="high.prio"))
    assert json.loads(fake_redis.lindex("oxide:queue:emails:failed", -1))["uuid"] == "1"
    assert parking.count() == 3

    moved: list[str] = []
    store = FakeStore()
    store.log = lambda job: moved.append(job.uuid)  # type: ignore[method-assign]
    assert parking.drain(store) == 3
    assert moved == ["1", "2", "3"]  # keys in name order, each list oldest first
    assert fake_redis.keys("oxide:queue:*") == []


def test_redis_parking_ignores_keys_that_are_not_a_queues_failures(fake_redis: Any) -> None:
    fake_redis.lpush("oxide:queue:emails", "a job, not a failure")
    fake_redis.lpush("oxide:queue:emails:reserved:failed", "someone else's structure")
    parking = RedisParking(fake_redis)
    parking.park(failure("1"))
    assert parking.keys() == ["oxide:queue:emails:failed"]


def test_redis_drain_stops_at_a_store_error_and_keeps_what_is_left(fake_redis: Any) -> None:
    parking = RedisParking(fake_redis)
    parking.park(failure("1"))
    parking.park(failure("2"))
    store = FakeStore()
    store.down = True
    with pytest.raises(DatabaseError):
        parking.drain(store)
    assert fake_redis.llen("oxide:queue:emails:failed") == 2
    store.down = False
    assert parking.drain(store) == 2
    assert sorted(store.rows) == ["1", "2"]


def test_an_unreadable_redis_record_is_set_aside_not_retried(fake_redis: Any) -> None:
    fake_redis.lpush("oxide:queue:emails:failed", "not json")
    parking = RedisParking(fake_redis)
    parking.park(failure("good"))
    store = FakeStore()
    assert parking.drain(store) == 1
    assert list(store.rows) == ["good"]
    assert fake_redis.lrange("oxide:queue:emails:failed:unreadable", 0, -1) == [b"not json"]


def test_redis_down_is_a_parking_error(tmp_path: Path) -> None:
    from oxide.drivers.redis import connect

    parking = RedisParking(connect("redis://127.0.0.1:1/13"), "redis 'down'")
    with pytest.raises(ParkingError, match="redis 'down'"):
        parking.park(failure("1"))


def test_spool_parking_appends_lines_and_drains_in_order(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "storage" / "oxide" / "failed-jobs.spool")
    spool.park(failure("1"))
    spool.park(failure("2"))
    assert [json.loads(line)["uuid"] for line in spool.path.read_text().splitlines()] == ["1", "2"]
    assert spool.count() == 2
    store = FakeStore()
    assert spool.drain(store) == 2
    assert list(store.rows) == ["1", "2"]
    assert not spool.path.exists()
    assert spool.drain(store) == 0


def test_spool_drain_interrupted_by_the_store_keeps_the_rest(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    for uuid in ("1", "2", "3"):
        spool.park(failure(uuid))
    store = FakeStore()
    real_log = store.log

    def log_two_then_fail(job: FailedJob) -> None:
        if len(store.rows) == 2:
            store.down = True
        real_log(job)

    store.log = log_two_then_fail  # type: ignore[method-assign]
    with pytest.raises(DatabaseError):
        spool.drain(store)
    assert [json.loads(line)["uuid"] for line in spool.path.read_text().splitlines()] == ["3"]
    store.down = False
    store.log = real_log  # type: ignore[method-assign]
    assert spool.drain(store) == 1
    assert list(store.rows) == ["1", "2", "3"]


def test_a_torn_spool_line_is_set_aside(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    spool.park(failure("1"))
    with spool.path.open("a") as handle:
        handle.write('{"uuid": "2", "conn')  # a crash in the middle of an append
    store = FakeStore()
    assert spool.drain(store) == 1
    assert list(store.rows) == ["1"]
    assert (tmp_path / "failed-jobs.spool.unreadable").read_text() == '{"uuid": "2", "conn\n'
    assert not spool.path.exists()


def test_an_unwritable_spool_is_a_parking_error(tmp_path: Path) -> None:
    (tmp_path / "storage").write_text("a file where the spool's directory should be")
    spool = SpoolParking(tmp_path / "storage" / "oxide" / "failed-jobs.spool")
    with pytest.raises(ParkingError, match="spool file"):
        spool.park(failure("1"))


def test_provider_parks_when_the_store_refuses_and_logs_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.down = True
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    provider = ParkingProvider(store, [spool])
    with caplog.at_level(logging.ERROR, logger="oxide.failed"):
        provider.log(failure("1"))
    assert spool.count() == 1
    assert caplog.messages == [
        "could not write failed job uuid=1 (queue=emails event=auth.user_registered) to failed_jobs: "
        f"database 'sqlite': database is locked; parked in spool file {spool.path}, "
        "moved to failed_jobs once the database answers"
    ]

    assert provider.flush_parked() == 0  # still down: nothing moves, nothing raises
    store.down = False
    provider.log(failure("2"))  # the store answers again: what waited comes in too
    assert sorted(store.rows) == ["1", "2"]
    assert spool.count() == 0


def test_provider_falls_back_to_the_next_parking_place(tmp_path: Path) -> None:
    from oxide.drivers.redis import connect

    store = FakeStore()
    store.down = True
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    provider = ParkingProvider(store, [RedisParking(connect("redis://127.0.0.1:1/13")), spool])
    provider.log(failure("1"))
    assert spool.count() == 1


def test_provider_raises_only_when_no_place_takes_the_record(tmp_path: Path) -> None:
    (tmp_path / "storage").write_text("not a directory")
    store = FakeStore()
    store.down = True
    provider = ParkingProvider(store, [SpoolParking(tmp_path / "storage" / "oxide" / "s.spool")])
    with pytest.raises(ParkingError, match=r"could not be recorded anywhere: .*database is locked.*spool file"):
        provider.log(failure("1"))


def test_a_failure_without_uuid_gets_one_before_it_is_parked(tmp_path: Path) -> None:
    store = FakeStore()
    store.down = True
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    ParkingProvider(store, [spool]).log(failure(""))
    assert json.loads(spool.path.read_text())["uuid"]


def test_a_record_parked_twice_becomes_one_row(tmp_path: Path) -> None:
    # A crash after the store took a parked record but before it was removed leaves it parked again.
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    spool.park(failure("1"))
    spool.park(failure("1"))
    store = FakeStore()
    assert ParkingProvider(store, [spool]).flush_parked() == 2
    assert list(store.rows) == ["1"]


def test_idle_flushes_look_again_only_after_parking(tmp_path: Path) -> None:
    class CountingSpool(SpoolParking):
        drains = 0

        def drain(self, store: Any) -> int:
            CountingSpool.drains += 1
            return super().drain(store)

    store = FakeStore()
    provider = ParkingProvider(store, [CountingSpool(tmp_path / "s.spool")])
    provider.flush_parked()  # at start: an earlier run may have parked
    provider.flush_parked()
    assert CountingSpool.drains == 1
    store.down = True
    provider.log(failure("1"))
    store.down = False
    assert provider.flush_parked() == 1
    assert CountingSpool.drains == 2
    assert provider.flush_parked(force=True) == 0
    assert CountingSpool.drains == 3


@pytest.mark.parametrize("text", ["[]", '"a string"', "42", "null"])
def test_a_parked_line_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a parked record is a JSON object"):
        decode_record(text)


def test_the_log_only_provider_keeps_nothing_to_list_find_or_forget() -> None:
    from oxide.failed import LogOnlyProvider

    provider = LogOnlyProvider()
    provider.log(failure("u1"))
    assert provider.all() == []
    assert provider.find([1]) == []
    assert provider.forget(1) is False
    assert provider.flush() == 0
    assert provider.flush_parked() == 0


def test_the_parking_provider_answers_reads_and_deletes_from_its_store(tmp_path: Path) -> None:
    store = FakeStore()
    provider = ParkingProvider(store, [SpoolParking(tmp_path / "s.spool")])
    provider.log(failure("u1"))
    provider.log(failure("u2"))
    assert [r.uuid for r in provider.all()] == ["u1", "u2"]
    assert [r.uuid for r in provider.find([2])] == ["u2"]
    forgotten: list[int] = []
    store.forget = lambda job_id: forgotten.append(job_id) is None  # type: ignore[method-assign]
    assert provider.forget(7) is True
    assert forgotten == [7]
    assert provider.flush() == 2
    assert store.rows == {}


def test_a_record_is_one_compact_line_of_fixed_form() -> None:
    assert encode_record(failure("u1")) == (
        '{"uuid":"u1","connection":"redis","queue":"emails","event_name":"auth.user_registered",'
        '"listener_type":"app.L","payload":"{\\"a\\":1}","exception":"boom",'
        '"failed_at":"2025-06-01T12:00:00.123456+00:00"}'
    )


def test_the_refusal_of_a_record_that_is_not_an_object_says_exactly_that() -> None:
    with pytest.raises(ValueError, match=r"^a parked record is a JSON object$"):
        decode_record("[]")


def test_redis_parking_names_its_lists_for_the_log(fake_redis: Any) -> None:
    assert RedisParking(fake_redis).where == "redis lists oxide:queue:<queue>:failed"
    assert RedisParking(fake_redis, "redis 'main'").where == "redis 'main' lists oxide:queue:<queue>:failed"


def test_redis_parking_finds_only_its_own_lists_among_other_applications_keys(fake_redis: Any) -> None:
    # Cut as if it were one of ours (12 characters off the front, 7 off the end), this key would
    # leave a queue name without ":" ("queue-name-").
    fake_redis.lpush("another-app-queue-name-backlog", "not ours")
    parking = RedisParking(fake_redis)
    parking.park(failure("1"))
    assert parking.keys() == ["oxide:queue:emails:failed"]
    assert parking.count() == 1


def test_redis_parking_works_on_a_client_that_decodes_replies(fake_redis: Any) -> None:
    import fakeredis

    client = fakeredis.FakeRedis(server=fake_redis.connection_pool.connection_kwargs["server"], decode_responses=True)
    parking = RedisParking(client)
    parking.park(failure("1", queue="high"))
    assert parking.keys() == ["oxide:queue:high:failed"]
    store = FakeStore()
    assert parking.drain(store) == 1
    assert list(store.rows) == ["1"]


def test_redis_drain_moves_the_oldest_copy_first_when_a_record_was_parked_twice(fake_redis: Any) -> None:
    # A crash between storing and removing parks the same record again later: both copies are moved, in order.
    parking = RedisParking(fake_redis)
    for uuid in ("1", "2", "1"):
        parking.park(failure(uuid))
    moved: list[str] = []
    store = FakeStore()
    store.log = lambda job: moved.append(job.uuid)  # type: ignore[method-assign]
    assert parking.drain(store) == 3
    assert moved == ["1", "2", "1"]
    assert fake_redis.llen("oxide:queue:emails:failed") == 0


def test_unreadable_redis_records_are_set_aside_in_order_each_copy_kept(
    fake_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for raw in ("x", "y", "x"):
        fake_redis.lpush("oxide:queue:emails:failed", raw)
    with caplog.at_level(logging.ERROR, logger="oxide.failed"):
        assert RedisParking(fake_redis).drain(FakeStore()) == 0
    assert fake_redis.lrange("oxide:queue:emails:failed:unreadable", 0, -1) == [b"x", b"y", b"x"]
    assert fake_redis.llen("oxide:queue:emails:failed") == 0
    assert caplog.messages[0] == (
        "parked record in oxide:queue:emails:failed is not readable (Expecting value: line 1 column 1 (char 0)); "
        "moved to oxide:queue:emails:failed:unreadable"
    )


def test_spool_drain_that_stops_keeps_every_remaining_line_in_order(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    for uuid in ("1", "2", "3"):
        spool.park(failure(uuid))
    store = FakeStore()
    store.refused = {"2"}
    with pytest.raises(DatabaseError):
        spool.drain(store)
    assert list(store.rows) == ["1"]
    assert spool.path.read_text() == encode_record(failure("2")) + "\n" + encode_record(failure("3")) + "\n"


def test_a_spool_line_edited_with_foreign_bytes_reads_and_its_bytes_are_kept(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    edited = encode_record(failure("2")).replace("boom", "b\u00e9om").encode("utf-8")
    spool.path.write_bytes(encode_record(failure("1")).encode() + b"\n" + edited + b"\n" + b"\xff torn\n")
    store = FakeStore()
    store.refused = {"2"}
    with pytest.raises(DatabaseError):  # the store's own error, not a codec's
        spool.drain(store)
    assert spool.path.read_bytes() == edited + b"\n" + b"\xff torn\n"  # the lines not moved, byte for byte
    store.refused = set()
    assert spool.drain(store) == 1
    assert store.rows["2"].exception == "b\udcc3\udca9om"  # each foreign byte kept as its surrogate escape
    assert (tmp_path / "failed-jobs.spool.unreadable").read_bytes() == b"\xff torn\n"
    assert not spool.path.exists()


def test_a_torn_spool_line_is_logged_with_where_it_went(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    spool.path.write_text("{torn\n")
    with caplog.at_level(logging.ERROR, logger="oxide.failed"):
        assert spool.drain(FakeStore()) == 0
    assert caplog.messages == [
        f"unreadable line in {spool.path} (Expecting property name enclosed in double quotes: line 1 column 2 "
        f"(char 1)): moved to {spool.path}.unreadable"
    ]


def test_a_spool_that_cannot_be_read_is_a_parking_error_naming_it(tmp_path: Path) -> None:
    spool = SpoolParking(tmp_path / "failed-jobs.spool")
    spool.path.mkdir()  # a directory where the file should be
    with pytest.raises(ParkingError) as info:
        spool.drain(FakeStore())
    assert str(info.value).startswith(f"spool file {spool.path}: [Errno 21] Is a directory")


def test_a_record_no_place_takes_names_every_refusal_in_order(fake_redis: Any, tmp_path: Path) -> None:
    from oxide.drivers.redis import connect

    (tmp_path / "storage").write_text("not a directory")
    store = FakeStore()
    store.down = True
    down = RedisParking(connect("redis://127.0.0.1:1/13"), "redis 'down'")
    spool = SpoolParking(tmp_path / "storage" / "s.spool")
    with pytest.raises(ParkingError) as info:
        ParkingProvider(store, [down, spool]).log(failure("1"))
    problems = str(info.value).removeprefix("failed job uuid=1 could not be recorded anywhere: ").split("; ")
    assert problems[0] == "database 'sqlite': database is locked"
    assert problems[1].startswith("redis 'down' lists oxide:queue:<queue>:failed: ")
    assert problems[2].startswith(f"spool file {spool.path}: ")
    assert len(problems) == 3


def test_flush_parked_adds_up_every_place_and_logs_what_it_moved_and_what_it_could_not(
    fake_redis: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from oxide.drivers.redis import connect

    redis_parking, spool = RedisParking(fake_redis), SpoolParking(tmp_path / "s.spool")
    redis_parking.park(failure("1"))
    spool.park(failure("2"))
    spool.park(failure("3"))
    down = RedisParking(connect("redis://127.0.0.1:1/13"), "redis 'down'")
    store = FakeStore()
    provider = ParkingProvider(store, [redis_parking, down, spool])
    assert provider.parked_count() == 3  # the place that cannot be read counts none
    with caplog.at_level(logging.INFO, logger="oxide.failed"):
        assert provider.flush_parked() == 3
    assert sorted(store.rows) == ["1", "2", "3"]
    assert caplog.messages[0].startswith(
        "parked failed jobs cannot be moved into failed_jobs yet: redis 'down' lists oxide:queue:<queue>:failed: "
    )
    assert caplog.messages[1] == "moved 3 parked failed job(s) into failed_jobs"
    assert len(caplog.messages) == 2


def test_an_idle_flush_after_a_complete_move_moves_nothing(tmp_path: Path) -> None:
    provider = ParkingProvider(FakeStore(), [SpoolParking(tmp_path / "s.spool")])
    assert provider.flush_parked() == 0
    assert provider.flush_parked() == 0


def test_every_uuid_given_to_a_failure_is_a_fresh_uuid4() -> None:
    import uuid

    from oxide.failed.store import with_uuid

    given = {with_uuid(failure("")).uuid for _ in range(3)}
    assert len(given) == 3
    assert all(uuid.UUID(u).version == 4 for u in given)
    assert with_uuid(failure("kept")).uuid == "kept"


def test_the_log_only_provider_logs_the_whole_failure_at_error_level(caplog: pytest.LogCaptureFixture) -> None:
    from oxide.failed import LogOnlyProvider

    with caplog.at_level(logging.ERROR, logger="oxide.failed"):
        LogOnlyProvider().log(failure("u1", queue="high"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert caplog.messages == [
        "failed job dropped (failed.driver = none): connection=redis queue=high event=auth.user_registered "
        "listener=app.L uuid=u1\nboom"
    ]
