"""Real Redis Clusters and Sentinel groups for tests, from ``redis-server`` on free local ports.

:class:`LocalCluster`: three masters and three replicas, slots spread by ``redis-cli --cluster
create``. :class:`LocalSentinel`: a master, a replica and three sentinels watching them. Every
process is ours, started here and stopped by its pid; each node keeps its directory, so a node
killed and started again comes back with its identity (a cluster node rejoins as a replica of
whoever took its place).

Failovers are quick on purpose: a node is declared down after ``NODE_TIMEOUT_MS``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Clusters and sentinels take free ports of this range (a cluster node also needs port + 10000).
PORTS = os.environ.get("OXIDE_TEST_CLUSTER_PORTS", "7300-7399")
NODE_TIMEOUT_MS = 2000
SENTINEL_DOWN_MS = 2000


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, poll_secs: float = 0.05) -> None:
    """Poll ``condition``; a liveness bound, generous so that slow machines pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll_secs)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (no pytest in this module: the bench uses it too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, taken: set[int], *, bus: bool = False) -> list[int]:
    found = []
    low, _, high = PORTS.partition("-")
    for port in range(int(low), int(high or low) + 1):
        if port in taken or not port_is_free(port) or (bus and not port_is_free(port + 10000)):
            continue
        found.append(port)
        taken.add(port)
        if len(found) == count:
            return found
    raise AssertionError(f"not {count} free ports in {PORTS} (set OXIDE_TEST_CLUSTER_PORTS)")


def binaries() -> tuple[str, str] | None:
    """redis-server and redis-cli: from PATH, or as OXIDE_TEST_REDIS_SERVER / OXIDE_TEST_REDIS_CLI name
    them (.ci/check-deploy runs the cluster suite on Redis 6.2 that way)."""
    server = os.environ.get("OXIDE_TEST_REDIS_SERVER") or shutil.which("redis-server")
    cli = os.environ.get("OXIDE_TEST_REDIS_CLI") or shutil.which("redis-cli")
    return None if server is None or cli is None else (server, cli)


@dataclass
class Node:
    """One redis-server (or sentinel) process of ours, on a fixed port and directory."""

    binary: str
    port: int
    directory: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, *extra: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = self.directory / f"server-{self.starts}.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                *self.args,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self._answers(log), f"redis on port {self.port} to answer")

    def _answers(self, log: Path) -> bool:
        import redis

        assert self.proc is not None
        if self.proc.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"redis on port {self.port} exited at start:\n{text[-1500:]}")
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5, **options)

    def kill(self) -> None:
        """SIGKILL: gone at once, with whatever it had not yet sent to its replicas."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def wait_streaming(replica: Node) -> None:
    """Wait until ``replica`` is linked to its master and applies its writes as they come.

    A replica that has just loaded a full sync sent without a disk (``repl-diskless-sync``, the
    default since Redis 7.0) reports its link "up" at once, yet its master streams it nothing until
    the replica's first acknowledgement, up to a second later: a master killed in that second takes
    every write it made since the sync with it (docs/redis-compatibility.md). Here: the replica's
    offset must reach the master's offset of a moment after the link came up.
    """

    def linked() -> tuple[int, int] | None:
        with replica.client() as client:
            info = client.info("replication")
        if info.get("master_link_status") != "up":
            return None
        return int(info["master_port"]), int(info["slave_repl_offset"])

    wait_for(lambda: linked() is not None, f"the replica on port {replica.port} to link up")
    master_port, _ = linked() or (0, 0)
    with redis_client(master_port) as master:
        target = int(master.info("replication")["master_repl_offset"])
    wait_for(lambda: (linked() or (0, -1))[1] >= target, f"the replica on port {replica.port} to stream")


def redis_client(port: int) -> Any:
    import redis

    return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=5)


def _covers(ranges: str, slot: int) -> bool:
    low, _, high = ranges.partition("-")
    return low.isdigit() and int(low) <= slot <= int(high or low)


COMMON = ["--save", "", "--appendonly", "no", "--protected-mode", "no", "--repl-diskless-sync-delay", "0"]


@dataclass
class LocalCluster:
    """Three masters and three replicas; ``url`` names all six as seeds."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @classmethod
    def start(cls, server: str, cli: str, root: Path) -> LocalCluster:
        ports = free_ports(6, set(), bus=True)
        cluster = cls()
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0", *COMMON]
        try:
            for port in ports:
                node = Node(server, port, root / f"node-{port}", args)
                cluster.nodes.append(node)
                node.start()
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            cluster.wait_healthy()
            cluster.wait_replicas_streaming()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _info(self, node: Node) -> dict[str, str]:
        with node.client() as client:
            return {k: str(v) for k, v in client.cluster("info").items()}

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node sees all slots served and three masters."""

        def healthy() -> bool:
            try:
                return (
                    all(
                        self._info(n).get("cluster_state") == "ok" and self._info(n).get("cluster_size") == "3"
                        for n in self.nodes
                        if n.alive
                    )
                    and len(self.masters()) == 3
                )
            except Exception:
                return False

        wait_for(healthy, "the cluster to serve every slot with three masters", timeout)

    def masters(self) -> list[Node]:
        out = []
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                with node.client() as client:
                    if client.info("replication")["role"] == "master":
                        out.append(node)
            except Exception:
                continue
        return out

    def master_of(self, key: str) -> Node:
        """The live node that serves ``key``'s slot now, by its own account."""
        from oxide.drivers.keyspace import key_slot

        slot = key_slot(key)
        for node in self.masters():
            with node.client() as client:
                raw = client.execute_command("CLUSTER", "NODES")
            for line in (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines():
                if True:
                    flags, ranges = line.split()[2], line.split()[8:]
                    if "myself" in flags and any(_covers(r, slot) for r in ranges):
                        return node
        raise AssertionError(f"no live master serves slot {slot}")

    def fail_over(self, key: str, *, streaming: bool = True) -> Node:
        """Kill the master of ``key``'s slot, wait until a replica serves it, start the dead one again
        (it rejoins as a replica). Returns the node that was killed."""
        old = self.master_of(key)
        old.kill()
        wait_for(lambda: self._served_elsewhere(key, old), f"a replica to take over {key!r}")
        old.start()
        self.wait_healthy()
        if streaming:  # else return as soon as the restarted node has loaded its sync
            self.wait_replicas_streaming()
        else:
            wait_for(lambda: old.client().info("replication").get("master_link_status") == "up", "the sync")
        return old

    def _served_elsewhere(self, key: str, old: Node) -> bool:
        try:
            return self.master_of(key) is not old
        except AssertionError:
            return False

    def wait_replicas_streaming(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                role = client.info("replication")["role"]
            if role == "slave":
                wait_streaming(node)

    def move_slot(self, slot: int, target: Node, first: list[str], between: Callable[[], None]) -> None:
        """Move ``slot`` to the master ``target`` as ``redis-cli --cluster reshard`` does: mark it
        migrating and importing, MIGRATE the keys ``first`` (those present), call ``between()`` while the
        slot is half moved, MIGRATE the rest, then give the slot to ``target`` on every master."""
        source = next(n for n in self.masters() if self._serves(n, slot))
        ids = {n.port: _text(n.client().execute_command("CLUSTER", "MYID")) for n in (source, target)}
        with target.client() as t, source.client() as s:
            t.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
            s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])

            def migrate(keys: list[str]) -> None:
                if keys:
                    s.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)

            migrate([k for k in first if s.exists(k)])
            between()
            migrate([_text(k) for k in s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100000)])
        for node in [target, source, *(m for m in self.masters() if m not in (source, target))]:
            with node.client() as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        wait_for(lambda: all(self._serves(target, slot, n) for n in self.masters()), "every master to agree")

    def _serves(self, node: Node, slot: int, asked: Node | None = None) -> bool:
        """Whether ``asked`` (by default ``node`` itself) says that ``node`` serves ``slot``."""
        with (asked or node).client() as client:
            raw = _text(client.execute_command("CLUSTER", "NODES"))
        for line in raw.splitlines():
            fields = line.split()
            if fields[1].split("@")[0].endswith(f":{node.port}") and "master" in fields[2]:
                return any(_covers(r, slot) for r in fields[8:])
        return False

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class LocalSentinel:
    """A master, one replica and three sentinels watching them under the name ``master_name``."""

    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)
    master_name: str = "oxide-test"

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{s.port}' for s in self.sentinels)}/{self.master_name}/0"

    @classmethod
    def start(cls, server: str, root: Path) -> LocalSentinel:
        taken: set[int] = set()
        master_port, replica_port = free_ports(2, taken)
        group = cls()
        try:
            master = Node(server, master_port, root / f"server-{master_port}", list(COMMON))
            replica = Node(server, replica_port, root / f"server-{replica_port}", list(COMMON))
            group.servers += [master, replica]
            master.start()
            replica.start("--replicaof", "127.0.0.1", str(master_port))
            for port in free_ports(3, taken):
                directory = root / f"sentinel-{port}"
                directory.mkdir(parents=True)
                conf = directory / "sentinel.conf"
                conf.write_text(
                    f"sentinel monitor {group.master_name} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {group.master_name} {SENTINEL_DOWN_MS}\n"
                    f"sentinel failover-timeout {group.master_name} 2000\n",
                    encoding="utf-8",
                )
                sentinel = Node(server, port, directory, [str(conf), "--sentinel", "--protected-mode", "no"])
                group.sentinels.append(sentinel)
                sentinel.start()
            wait_for(group._replica_known, "the sentinels to see the replica")
            wait_streaming(replica)
        except BaseException:
            group.stop()
            raise
        return group

    def master(self) -> Node:
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            with sentinel.client() as client:
                _, port = client.sentinel_get_master_addr_by_name(self.master_name)
            return next(s for s in self.servers if s.port == int(port))
        raise AssertionError("no sentinel alive")

    def _replica_known(self) -> bool:
        try:
            with self.sentinels[0].client() as client:
                return any(r.get("flags") == "slave" for r in client.sentinel_slaves(self.master_name))
        except Exception:
            return False

    def fail_over(self, *, streaming: bool = True) -> Node:
        """Kill the master, wait until the sentinels promote the replica, start the dead one again as a
        replica of the new master. Returns the node that was killed."""
        old = self.master()
        old.kill()
        wait_for(lambda: self.master() is not old, "the sentinels to promote the replica")
        new = self.master()
        wait_for(lambda: new.client().info("replication")["role"] == "master", "the new master to accept writes")
        old.start("--replicaof", "127.0.0.1", str(new.port))
        if streaming:  # else return as soon as the restarted node has loaded its sync
            wait_streaming(old)
        else:
            wait_for(lambda: old.client().info("replication").get("master_link_status") == "up", "the sync")
        wait_for(self._replica_known, "the sentinels to see the replica")
        return old

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            node.kill()
