"""One Redis server, a Redis Cluster or a Sentinel-watched master: the URL, the client, the errors.

A connection's ``url`` says which:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's ``Redis``);
- ``redis+cluster://host:port,host2:port2``: a cluster, found from any of these seed nodes
  (``RedisCluster``); no database number, a cluster has only database 0;
- ``redis+sentinel://host:26379,host2:26379/<master name>[/<db>]``: the master that the
  sentinels name (``Sentinel.master_for``); a password in the URL is the data nodes'.

The config forms (``cluster = true`` beside a ``redis://`` URL; ``sentinels`` and
``sentinel_master``) are rewritten into these URLs when the config is read (:func:`fold`),
so everything else sees a URL alone.

Failures: a node that went away, a cluster without a master for a slot while a replica takes
over (``CLUSTERDOWN``, slots not covered, ``TRYAGAIN``), a demoted master that now refuses writes
(``READONLY``): all say "unavailable, try again", never "this job failed" (:func:`is_unavailable`).
Redirects (``MOVED``, ``ASK``) are followed by ``RedisCluster`` itself; it then learns the new
layout. Nothing is retried behind the worker's back: a command whose reply was lost may have run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigError, ConnectionUnavailable

__all__ = [
    "CLUSTER",
    "SENTINEL",
    "LazyCluster",
    "NotReplicated",
    "Topology",
    "fold",
    "is_unavailable",
    "open_client",
    "parse",
    "unavailable_errors",
    "write_replicated",
]

CLUSTER = "redis+cluster"
SENTINEL = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", CLUSTER, SENTINEL)
TOPOLOGY_KEYS = ("cluster", "sentinels", "sentinel_master")


@dataclass(frozen=True)
class Topology:
    """A parsed cluster or Sentinel URL."""

    kind: str  # CLUSTER or SENTINEL
    nodes: tuple[tuple[str, int], ...]  # seed nodes, or the sentinels
    master: str | None = None  # Sentinel: the monitored master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def _hosts(text: str, default_port: int, where: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for part in (p.strip() for p in text.split(",")):
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{where}: {part!r} is not host:port")
        nodes.append((host, int(port)))
    return tuple(nodes)


def parse(url: str, where: str = "url") -> Topology | None:
    """The cluster or Sentinel of ``url``; None for a single server's URL; a ConfigError if malformed."""
    scheme, sep, rest = url.partition("://")
    if scheme not in (CLUSTER, SENTINEL) or not sep:
        return None
    rest, _, query = rest.partition("?")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        userinfo, hostpart = "", rest
    hosts, _, path = hostpart.partition("/")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise ConfigError(f"{where}: {scheme}:// needs at least one host:port")
    params = parse_qs(query)
    common: dict[str, Any] = {
        "username": unquote(username) or None,
        "password": unquote(password) if password else None,
    }
    segments = [s for s in path.split("/") if s]
    if scheme == CLUSTER:
        if segments not in ([], ["0"]):
            raise ConfigError(f"{where}: a Redis Cluster has only database 0; drop '/{path}' from the URL")
        return Topology(CLUSTER, _hosts(hosts, 6379, where), **common)
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ConfigError(
            f"{where}: expected redis+sentinel://host:26379[,host2:26379]/<master name>[/<db>], got '/{path}'"
        )
    sentinel_password = params.get("sentinel_password", [None])[0]
    db = int(segments[1]) if len(segments) == 2 else 0
    return Topology(
        SENTINEL, _hosts(hosts, 26379, where), segments[0], db, sentinel_password=sentinel_password, **common
    )


def fold(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A redis connection block with its config-form topology rewritten into the ``url``."""
    out = {k: v for k, v in block.items() if k not in TOPOLOGY_KEYS}
    cluster, sentinels, master = (block.get(k) for k in TOPOLOGY_KEYS)
    if cluster is not None and not isinstance(cluster, bool):
        raise ConfigError(f"{where}.cluster: expected true or false, got {cluster!r}")
    if (sentinels is None) != (master is None):
        raise ConfigError(f"{where}: 'sentinels' and 'sentinel_master' go together; set both or neither")
    if cluster and sentinels is not None:
        raise ConfigError(f"{where}: a connection is a cluster or has sentinels, not both")
    url = str(block.get("url", "redis://127.0.0.1:6379"))
    parts = urlsplit(url) if "://" in url else None
    if cluster or sentinels is not None:
        if parts is None or parts.scheme != "redis":
            raise ConfigError(
                f"{where}.url: with cluster or sentinels, expected a redis:// URL, got {url.rpartition('@')[2]!r}"
            )
        auth = url.partition("://")[2].rpartition("@")[0]
        auth = auth + "@" if auth else ""
    if cluster:
        out["url"] = f"{CLUSTER}://{auth}{parts.netloc.rpartition('@')[2]}"  # type: ignore[union-attr]
    elif sentinels is not None:
        if not isinstance(sentinels, list) or not sentinels or not all(isinstance(s, str) for s in sentinels):
            raise ConfigError(f'{where}.sentinels: expected a list of "host:port" strings, got {sentinels!r}')
        if not isinstance(master, str) or not master or "/" in master:
            raise ConfigError(f"{where}.sentinel_master: expected the master's name, got {master!r}")
        db = (parts.path.strip("/") or "0") if parts else "0"
        out["url"] = f"{SENTINEL}://{auth}{','.join(sentinels)}/{master}/{db}"
    return out


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The redis-py errors that mean "the server is not there right now": reconnect and retry."""
    import redis.exceptions as e

    return (
        e.ConnectionError,
        e.TimeoutError,
        e.ClusterError,  # CLUSTERDOWN, MASTERDOWN (a failover under way); "TTL exhausted" (redirects while a slot moves)
        e.TryAgainError,  # a multi-key command during resharding
        e.SlotNotCoveredError,
        e.RedisClusterUnreachableError,
        e.ReadOnlyError,  # a demoted master that still had our connection
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the server is not there right now" (:func:`unavailable_errors`), including
    a demoted master's refusal inside a script, which Redis 6.2 reports as a script error."""
    import redis.exceptions as e

    if isinstance(exc, unavailable_errors()):
        return True
    return isinstance(exc, e.ResponseError) and "-READONLY " in str(exc)


def open_client(url: str, **options: Any) -> Any:
    """A cluster or Sentinel client for ``url`` with the single-server client's ``options``."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    topology = parse(url)
    assert topology is not None
    if topology.kind == CLUSTER:
        from redis.cluster import ClusterNode, RedisCluster

        options.pop("retry", None)
        options.pop("retry_on_timeout", None)

        def build() -> Any:
            # retry with no retries: a ConnectionError reaches the worker (which reconnects and logs
            # it) after the client has marked the node failed and will re-read the slots next time.
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],  # type: ignore[no-untyped-call]
                retry=Retry(NoBackoff(), 0),
                username=topology.username,
                password=topology.password,
                **options,
            )

        return LazyCluster(build)
    from redis.sentinel import Sentinel

    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_connect")}
    if topology.sentinel_password:
        sentinel_options["password"] = topology.sentinel_password
    sentinel = Sentinel(list(topology.nodes), sentinel_kwargs=sentinel_options)
    assert topology.master is not None
    return sentinel.master_for(
        topology.master, db=topology.db, username=topology.username, password=topology.password, **options
    )


class NotReplicated(ConnectionUnavailable):
    """A push the master took but fewer replicas than ``wait_replicas`` confirmed in time.

    The job is queued and will most likely run; it is only not yet safe from a failover. A
    producer that pushes it again may run it twice.
    """


def _node_pipeline(client: Any, key: str) -> Any:
    """A pipeline whose commands all go down one connection to the master holding ``key``.

    WAIT counts only the writes made on its own connection, so the push and its WAIT must share
    one; a cluster client would send a WAIT to any node.
    """
    if hasattr(client, "get_node_from_key"):
        return client.get_redis_connection(client.get_node_from_key(key)).pipeline(transaction=False)
    return client.pipeline(transaction=False)


def write_replicated(
    client: Any, key: str, write: Callable[[Any], object], replicas: int, timeout_ms: int
) -> list[Any]:
    """Run ``write(pipeline)`` then ``WAIT replicas timeout_ms`` on the master holding ``key``, and
    return the replies to what ``write`` queued.

    Raises :class:`NotReplicated` when fewer replicas confirmed. On a cluster, a slot that moved
    since the client last looked (MOVED, ASK: the write did not run) makes it re-read the slots
    and write again, twice at most.
    """
    import redis.exceptions as e

    for attempt in range(3):
        pipe = _node_pipeline(client, key)
        write(pipe)
        pipe.wait(replicas, timeout_ms)
        try:
            replies = pipe.execute()
            confirmed = int(replies[-1])
        except e.AskError:  # MOVED is an AskError too
            if attempt == 2 or not hasattr(client, "nodes_manager"):
                raise e.ConnectionError(f"{key}: its slot kept moving while pushing") from None
            client.nodes_manager.initialize()
            continue
        if confirmed < replicas:
            raise NotReplicated(
                f"{key}: pushed, but {confirmed} of {replicas} replicas confirmed within {timeout_ms} ms "
                "(the job is queued; a failover now could lose it)"
            )
        return list(replies[:-1])
    raise AssertionError("unreachable: the last attempt returns or raises")


class LazyCluster:
    """A ``RedisCluster`` made at its first use, as a single server's client connects at its first
    command: a worker started while the cluster is down waits for it instead of crashing.

    Scripts registered on it are bound to it, so they too reach the cluster only when called.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None

    def _real(self) -> Any:
        if self._client is None:
            import redis.exceptions as e

            try:
                self._client = self._build()
            except e.RedisClusterUnreachableError as exc:
                raise e.ConnectionError(str(exc)) from None
            except e.RedisClusterException as exc:  # not a cluster, a db number, ...: no retry mends it
                raise ConfigError(f"redis cluster: {exc}") from None
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def register_script(self, script: str) -> Any:
        from redis.commands.core import Script

        return Script(self, script)  # type: ignore[arg-type]

    def get_encoder(self) -> Any:
        from redis._parsers.encoders import Encoder

        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
