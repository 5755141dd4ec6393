"""A cluster, Sentinel, the key prefix and ``wait_replicas`` in ``queue.toml``: what is accepted, what is
refused and how the message says so; the key names on one server and on a cluster (no server here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.crc import key_slot as redis_py_key_slot

from oxide.config import ConnectionConfig, load_config
from oxide.drivers.keyspace import PLAIN, KeySpace, key_slot, keyspace_of
from oxide.drivers.redis_topology import CLUSTER, SENTINEL, Topology, parse
from oxide.drivers.reservations import keys_of
from oxide.errors import ConfigError
from oxide.ops.redis_ops import connection_key, queue_ops_key

pytestmark = pytest.mark.usefixtures("isolated_cwd")


def load(tmp_path: Path, block: str) -> ConnectionConfig:
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "queue.toml").write_text(f'default = "r"\n[connections.r]\ndriver = "redis"\n{block}', "utf-8")
    return load_config(config_dir, environ={}).connection("r")


def refused(tmp_path: Path, block: str, key: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, block)
    message = str(info.value)
    assert f"queue.toml: connections.r{key}" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    return message


def test_a_single_server_keeps_the_rust_originals_key_names() -> None:
    conn = ConnectionConfig(name="r", driver="redis")
    space = keyspace_of(conn.prefix, conn.url)
    assert space == PLAIN
    assert keys_of("emails", space) == [
        "oxide:queue:emails",
        "oxide:queue:emails:reserved",
        "oxide:queue:emails:delayed",
        "oxide:queue:emails:notify",
        "oxide:queue:emails:crashes",
    ]
    assert queue_ops_key("emails", "paused") == "oxide:queue:emails:paused"
    assert connection_key("restart") == "oxide:queue::restart"


def test_on_a_cluster_each_queue_is_its_own_hash_tag_unless_the_prefix_has_one() -> None:
    spread = keyspace_of("oxide:queue:", "redis+cluster://h:7000")
    assert keys_of("emails", spread)[:2] == ["oxide:queue:{emails}", "oxide:queue:{emails}:reserved"]
    assert len({key_slot(k) for k in keys_of("emails", spread)}) == 1
    assert spread.slot("emails") != spread.slot("reports")
    together = keyspace_of("oxide:queue:{web}:", "redis+cluster://h:7000")
    assert keys_of("high", together)[0] == "oxide:queue:{web}:high"
    slots = {
        key_slot(k) for q in ("high", "default", "low") for k in [*keys_of(q, together), together.base(q) + ":paused"]
    }
    assert slots == {key_slot("web")}


@pytest.mark.parametrize("key", ["oxide:queue:{emails}:reserved", "plain", "{}empty-tag", "a{b}c{d}", "{{x}}", "é{ü}"])
def test_key_slot_agrees_with_redis_py(key: str) -> None:
    assert key_slot(key) == redis_py_key_slot(key.encode())


@pytest.mark.parametrize(
    ("space", "key", "parsed"),
    [
        (PLAIN, "oxide:queue:q1", ("q1", "")),
        (PLAIN, "oxide:queue:q1:reserved", ("q1", "reserved")),
        (PLAIN, "other:q1", None),
        (KeySpace(cluster=True), "oxide:queue:{q1}:delayed", ("q1", "delayed")),
        (KeySpace(cluster=True), "oxide:queue:{q1}", ("q1", "")),
        (KeySpace(cluster=True), "oxide:queue:q1", None),
        (KeySpace(cluster=True), "oxide:queue:{q1}x", None),
        (KeySpace("app:{web}:", cluster=True), "app:{web}:q1:paused", ("q1", "paused")),
    ],
)
def test_a_key_splits_back_into_queue_and_suffix(space: KeySpace, key: str, parsed: tuple[str, str] | None) -> None:
    assert space.split(key) == parsed


def test_a_worker_whose_queues_span_slots_is_refused_with_the_fix(tmp_path: Path) -> None:
    from oxide import App
    from oxide.worker import Worker

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "queue.toml").write_text(
        'default = "c"\n[connections.c]\ndriver = "redis"\nurl = "redis+cluster://127.0.0.1:1"\n'
        '[connections.t]\ndriver = "redis"\nurl = "redis+cluster://127.0.0.1:1"\nprefix = "oxide:queue:{web}:"\n'
        '[failed]\ndriver = "none"\n',
        "utf-8",
    )
    app = App(config=load_config(config_dir, environ={}))
    with pytest.raises(ConfigError) as info:
        Worker(app, "c", ["high", "low"])
    message = str(info.value)
    space = keyspace_of("oxide:queue:", "redis+cluster://x:1")
    for fragment in (
        "connection 'c' is a Redis Cluster",
        f"high -> slot {space.slot('high')}",
        f"low -> slot {space.slot('low')}",
        'prefix = "oxide:queue:{web}:"',
    ):
        assert fragment in message, message
    # One queue, or a prefix with a tag: no slot to span; nothing is connected before the first take.
    assert Worker(app, "c", ["high"]).queues == ("high",)
    assert Worker(app, "t", ["high", "low"]).queues == ("high", "low")


def test_url_forms_parse_to_seeds_sentinels_master_and_db() -> None:
    assert parse("redis://h:6379/2") is None
    assert parse("redis+cluster://h1:7000,h2:7001") == Topology(CLUSTER, (("h1", 7000), ("h2", 7001)))
    assert parse("redis+cluster://u:p%40ss@h1") == Topology(CLUSTER, (("h1", 6379),), username="u", password="p@ss")
    assert parse("redis+sentinel://s1:26379,s2/mymaster/3?sentinel_password=x") == Topology(
        SENTINEL, (("s1", 26379), ("s2", 26379)), "mymaster", 3, sentinel_password="x"
    )


def test_config_forms_become_urls(tmp_path: Path) -> None:
    conn = load(tmp_path, 'url = "redis://:pw@h:7000"\ncluster = true\nprefix = "app:{web}:"\n')
    assert (conn.url, conn.prefix) == ("redis+cluster://:pw@h:7000", "app:{web}:")
    conn = load(tmp_path, 'url = "redis://h/4"\nsentinels = ["s1:26379", "s2:26380"]\nsentinel_master = "m"\n')
    assert conn.url == "redis+sentinel://s1:26379,s2:26380/m/4"
    conn = load(tmp_path, 'url = "redis+sentinel://s1/m"\nwait_replicas = 1\nwait_timeout_secs = 0.25\n')
    assert (conn.wait_replicas, conn.wait_timeout_secs) == (1, 0.25)
    assert load(tmp_path, "cluster = false\n").url == ConnectionConfig.url


@pytest.mark.parametrize(
    ("block", "key", "fragments"),
    [
        ('url = "redis+cluster://"\n', ".url", ("needs at least one host:port",)),
        ('url = "redis+cluster://h:notaport"\n', ".url", ("'h:notaport' is not host:port",)),
        ('url = "redis+cluster://h:7000/3"\n', ".url", ("only database 0",)),
        ('url = "redis+sentinel://s1:26379"\n', ".url", ("/<master name>[/<db>]",)),
        ('url = "redis+sentinel://s1/m/x"\n', ".url", ("/<master name>[/<db>]",)),
        ("cluster = 1\n", ".cluster", ("expected true or false",)),
        ('sentinels = ["s:1"]\n', "", ("'sentinels' and 'sentinel_master' go together",)),
        ('sentinels = "s:1"\nsentinel_master = "m"\n', ".sentinels", ('a list of "host:port"',)),
        ('sentinels = ["s:1"]\nsentinel_master = ""\n', ".sentinel_master", ("the master's name",)),
        ('cluster = true\nsentinels = ["s:1"]\nsentinel_master = "m"\n', "", ("not both",)),
        ('cluster = true\nurl = "unix:///tmp/r.sock"\n', ".url", ("expected a redis:// URL",)),
        ('prefix = "has space"\n', ".prefix", ("printable characters without spaces",)),
        ('prefix = "oxide:{}:"\n', ".prefix", ("no hash tag", "oxide:queue:{web}:")),
        ('prefix = "ox}ide{a}:"\n', ".prefix", ("closes a hash tag it never opened",)),
        ("wait_replicas = -1\n", ".wait_replicas", ("a whole number >= 0",)),
        ("wait_replicas = 1.5\n", ".wait_replicas", ("a whole number",)),
        ("wait_timeout_secs = 0\n", ".wait_timeout_secs", ("WAIT 0 waits for ever",)),
    ],
)
def test_bad_topology_settings_are_refused_naming_the_key(
    tmp_path: Path, block: str, key: str, fragments: tuple[str, ...]
) -> None:
    refused(tmp_path, block, key, *fragments)


def test_a_password_never_reaches_a_topology_error(tmp_path: Path) -> None:
    message = refused(tmp_path, 'url = "redis+cluster://u:hunter2@h:bad"\n', ".url")
    assert "hunter2" not in message
    message = refused(tmp_path, 'cluster = true\nurl = "rediss://u:hunter2@h:1"\n', ".url")
    assert not re.search("hunter2", message)


def test_failover_errors_are_outages_and_other_errors_are_not() -> None:
    import redis.exceptions as e

    from oxide.drivers.redis_topology import is_unavailable

    # Redis 6.2 wraps a demoted master's refusal, met inside a script, in a script error.
    wrapped = "Error running script (call to f_5c02): @user_script:6: @user_script: 6: -READONLY You can't write"
    for outage in (
        e.ResponseError(wrapped),
        e.ReadOnlyError("You can't write against a read only replica."),
        e.ClusterDownError("The cluster is down"),
        e.MasterDownError("Link with MASTER is down"),
        e.TryAgainError("Multiple keys request during rehashing of slot"),
        e.ClusterError("TTL exhausted."),
        e.ConnectionError("Connection refused"),
    ):
        assert is_unavailable(outage), outage
    for bug in (
        e.ResponseError("WRONGTYPE Operation against a key"),
        e.ResponseError("READONLY in a body"),
        ValueError(),
    ):
        assert not is_unavailable(bug), bug
