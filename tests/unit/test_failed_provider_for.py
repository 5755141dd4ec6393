"""provider_for: which store and which parking places a worker's failures go to, per connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxide.config import Config, ConnectionConfig, DatabaseConfig, parse_database_url
from oxide.errors import ConfigError
from oxide.failed import LogOnlyProvider, provider_for, store_for
from oxide.failed.parking import ParkingProvider, RedisParking, SpoolParking
from oxide.failed.store import DatabaseFailedJobProvider


def config(root: Path, failed_driver: str = "database") -> Config:
    connections = {
        "jobs": ConnectionConfig(name="jobs", driver="sync"),
        "cache": ConnectionConfig(name="cache", driver="redis", url="redis://:s3cret@127.0.0.1:6390/7"),
    }
    database = DatabaseConfig("main", {"main": parse_database_url(f"sqlite:///{root / 'main.sqlite'}")})
    return Config(root / "config", root, "jobs", connections, failed_driver, database)


def test_driver_none_keeps_nothing_for_workers_and_for_the_command_line(tmp_path: Path) -> None:
    assert isinstance(provider_for(config(tmp_path, "none"), "cache"), LogOnlyProvider)
    assert isinstance(store_for(config(tmp_path, "none")), LogOnlyProvider)


def test_a_redis_connection_parks_in_its_own_redis_first_then_in_the_spool(tmp_path: Path) -> None:
    provider = provider_for(config(tmp_path), "cache")
    assert isinstance(provider, ParkingProvider)
    assert isinstance(provider.store, DatabaseFailedJobProvider)
    assert provider.store.database.name.startswith("database 'main' (sqlite:///")
    redis_parking, spool = provider.parkings
    assert isinstance(redis_parking, RedisParking)
    kwargs = redis_parking.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6390, 7)
    assert redis_parking.where == (
        "redis connection 'cache' (redis://:***@127.0.0.1:6390/7) lists oxide:queue:<queue>:failed"
    )
    assert isinstance(spool, SpoolParking)
    assert spool.path == tmp_path / "storage" / "oxide" / "failed-jobs.spool"


def test_any_other_connection_parks_in_the_spool_only(tmp_path: Path) -> None:
    provider = provider_for(config(tmp_path), "jobs")
    assert isinstance(provider, ParkingProvider)
    assert [type(p) for p in provider.parkings] == [SpoolParking]


def test_an_unknown_connection_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown queue connection 'nope'"):
        provider_for(config(tmp_path), "nope")


def test_a_worker_on_a_connection_other_than_the_default_parks_in_its_own_redis(tmp_path: Path) -> None:
    # The default connection ("jobs") has no Redis: a worker of "cache" must still park what the
    # database refuses in the Redis of "cache", not fall back to the default connection's places.
    from oxide import App
    from oxide.worker import Worker

    app = App(config=config(tmp_path))
    try:
        worker = Worker(app, "cache", ["default"], driver=object())  # type: ignore[arg-type]
        provider = worker._provider
        assert isinstance(provider, ParkingProvider)
        assert [type(p) for p in provider.parkings] == [RedisParking, SpoolParking]
        assert provider.parkings[0].where.startswith("redis connection 'cache' (")
    finally:
        app.close()
