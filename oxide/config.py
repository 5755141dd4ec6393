"""Configuration: read once, here, and typed on the way in.

Sources, in order: ``.env`` in the working directory (variables already in the
environment win), then ``config/queue.toml`` and ``config/database.toml`` in
the config directory (``--config DIR``, ``OXIDE_CONFIG_DIR`` or ``./config``).
A missing file means the built-in defaults. ``${VAR}`` and ``${VAR:-default}``
are expanded in every string value. Nothing else in the package reads
``os.environ``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "Config",
    "ConnectionConfig",
    "DatabaseConfig",
    "DatabaseUrl",
    "environment",
    "load_config",
    "load_dotenv",
    "parse_database_url",
    "redact_url",
]

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
SQL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Which keys each driver reads from its [connections.<name>] block. A new driver adds a line here.
DRIVER_KEYS: dict[str, frozenset[str]] = {
    "sync": frozenset({"driver", "queue"}),
    "redis": frozenset(
        {
            "driver",
            "url",
            "queue",
            "block_timeout_secs",
            "visibility_timeout_secs",
            "poll_interval_secs",
            "prefetch",
            "concurrency",
            "stop_timeout_secs",
            # A cluster, Sentinel and the key names: oxide/drivers/redis_topology.py, keyspace.py.
            "prefix",
            "cluster",
            "sentinels",
            "sentinel_master",
            "wait_replicas",
            "wait_timeout_secs",
        }
    ),
    "database": frozenset(
        {
            "driver",
            "connection",
            "table",
            "queue",
            "block_timeout_secs",
            "visibility_timeout_secs",
            "poll_interval_secs",
            "concurrency",
            "stop_timeout_secs",
        }
    ),
}
NUMBER_KEYS = frozenset(
    {"block_timeout_secs", "visibility_timeout_secs", "poll_interval_secs", "stop_timeout_secs", "wait_timeout_secs"}
)
INTEGER_KEYS = frozenset({"prefetch", "concurrency"})
FAILED_DRIVERS = ("database", "none")
DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}

DEFAULT_QUEUE_TOML: dict[str, Any] = {
    "default": "${QUEUE_CONNECTION:-sync}",
    "connections": {
        "sync": {"driver": "sync"},
        "redis": {
            "driver": "redis",
            "url": "${REDIS_URL:-redis://127.0.0.1:6379}",
            "queue": "default",
            "block_timeout_secs": 5,
            "visibility_timeout_secs": 90,
        },
    },
    "failed": {"driver": "${QUEUE_FAILED_DRIVER:-database}"},
}
DEFAULT_DATABASE_TOML: dict[str, Any] = {
    "default": "${DB_CONNECTION:-sqlite}",
    "connections": {
        "sqlite": {"url": "${DATABASE_URL:-sqlite:///database/database.sqlite}"},
        "pgsql": {"url": "postgresql://postgres@127.0.0.1:5432/app"},
        "mysql": {"url": "mysql://root@127.0.0.1:3306/app"},
    },
}


@dataclass(frozen=True)
class ConnectionConfig:
    """One ``[connections.<name>]`` block of ``queue.toml``, typed."""

    name: str
    driver: str
    queue: str = "default"
    url: str = field(default="redis://127.0.0.1:6379", repr=False)  # may hold a password: see redact_url
    block_timeout_secs: float = 5.0
    visibility_timeout_secs: float = 90.0
    poll_interval_secs: float = 0.5
    prefetch: int = 1
    # Jobs a worker runs at once, and how long a stopping worker waits for them (None: until they end).
    concurrency: int = 1
    stop_timeout_secs: float | None = None
    # The database driver: the database.toml connection it uses (None: that file's default), its
    # table, and that connection resolved when the config is loaded (a SQLite path made absolute).
    connection: str | None = None
    table: str = "jobs"
    database: DatabaseUrl | None = None
    # redis: the key prefix (with a {hash tag} on a cluster, see drivers/keyspace.py), and how many
    # replicas must confirm a push before it returns (WAIT), waiting at most wait_timeout_secs.
    prefix: str = "oxide:queue:"
    wait_replicas: int = 0
    wait_timeout_secs: float = 1.0


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: the dialect and what its DB-API driver needs."""

    dialect: str  # "sqlite", "postgresql" or "mysql"
    url: str = field(repr=False)  # may hold a password: print redacted() instead
    path: str | None = None  # sqlite: file path or ":memory:"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None

    def redacted(self) -> str:
        """The URL with any password replaced, safe to print."""
        return redact_url(self.url)


@dataclass(frozen=True)
class DatabaseConfig:
    """``database.toml``: named database connections and which one is the default."""

    default: str
    connections: Mapping[str, DatabaseUrl]

    def get(self, name: str | None = None) -> DatabaseUrl:
        """The named connection (the default when ``None``), or a ConfigError listing the names."""
        key = self.default if name is None else name
        try:
            return self.connections[key]
        except KeyError:
            raise ConfigError(
                f"database.toml: no database connection named {key!r}; defined: {', '.join(sorted(self.connections))}"
            ) from None


@dataclass(frozen=True)
class Config:
    """Everything the package reads from the outside world, typed."""

    config_dir: Path
    root: Path  # the application's directory: the config directory's parent
    default: str
    connections: Mapping[str, ConnectionConfig]
    failed_driver: str
    database: DatabaseConfig

    def connection(self, name: str | None = None) -> ConnectionConfig:
        """The named queue connection (the default when ``None``), or a ConfigError listing the names."""
        key = self.default if name is None else name
        try:
            return self.connections[key]
        except KeyError:
            raise ConfigError(
                f"unknown queue connection {key!r}; defined in queue.toml: {', '.join(sorted(self.connections))}"
            ) from None


_QUOTED_DOTENV_VALUE = re.compile(r"""(?:"(?P<double>(?:[^"\\]|\\.)*)"|'(?P<single>[^']*)')(?:\s+#.*|\s*)""")


def load_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, optional ``export``, quotes, ``#`` comments."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{path}:{number}: expected KEY=value, got {raw.strip()!r}")
        value = value.strip()
        # A quoted value ends at its closing quote; a comment may follow it.
        quoted = _QUOTED_DOTENV_VALUE.fullmatch(value)
        if quoted and quoted["double"] is not None:
            value = quoted["double"].replace("\\n", "\n").replace('\\"', '"')
        elif quoted:
            value = quoted["single"]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        values[key] = value
    return values


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (the default applies when VAR is unset or empty)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        start = text.find("${", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        depth, j = 1, start + 2
        while j < len(text) and depth:
            if text.startswith("${", j):
                depth, j = depth + 1, j + 2
                continue
            if text[j] == "}":
                depth -= 1
            j += 1
        if depth:
            raise ConfigError(f"{where}: unclosed '${{' in {text!r}")
        inner = text[start + 2 : j - 1]
        name, sep, default = inner.partition(":-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(
                f"{where}: {'${' + inner + '}'!r} is not a variable reference (expected ${{NAME}} or ${{NAME:-default}})"
            )
        value = env.get(name, "")
        if not value and sep:
            value = interpolate(default, env, where)
        out.append(value)
        i = j
    return "".join(out)


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, env, where)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _read_toml(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return default
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def _number(raw: Any, where: str, source: str, *, integer: bool = False, minimum: float = 0.0) -> Any:
    expected = "a whole number" if integer else "a number"
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip()) if integer else float(raw.strip())
        except ValueError:
            raise ConfigError(f"{where}: expected {expected}, got {raw!r}{source}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}{source}")
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{where}: expected {expected} >= {minimum:g}, got {raw!r}{source}")
    return value


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _source(raw: Any) -> str:
    return f" (from {raw})" if isinstance(raw, str) and "${" in raw else ""


def _connection(name: str, raw_block: Any, block: Any, file: str) -> ConnectionConfig:
    where = f"{file}: connections.{name}"
    block = _table(block, where)
    raw_block = raw_block if isinstance(raw_block, dict) else {}
    driver = block.get("driver")
    if driver not in DRIVER_KEYS:
        raise ConfigError(
            f"{where}.driver: unknown driver {driver!r}{_source(raw_block.get('driver'))}; "
            f"valid drivers: {', '.join(sorted(DRIVER_KEYS))}"
        )
    unknown = sorted(set(block) - DRIVER_KEYS[driver])
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: not a setting of the {driver} driver; valid keys: {', '.join(sorted(DRIVER_KEYS[driver]))}"
        )
    settings: dict[str, Any] = {"name": name, "driver": driver}
    if driver == "redis":
        from .drivers.redis_topology import fold

        block = fold(block, where)  # cluster = true, sentinels: rewritten into the url
    for key, value in block.items():
        if key == "driver":
            continue
        src = _source(raw_block.get(key))
        if key == "wait_replicas":
            settings[key] = _number(value, f"{where}.{key}", src, integer=True, minimum=0)
        elif key in NUMBER_KEYS:
            settings[key] = float(_number(value, f"{where}.{key}", src))
        elif key in INTEGER_KEYS:
            settings[key] = _number(value, f"{where}.{key}", src, integer=True, minimum=1)
        else:
            settings[key] = _string(value, f"{where}.{key}")
    if settings.get("stop_timeout_secs") == 0:
        settings["stop_timeout_secs"] = None  # 0: no limit, as --stop-timeout 0 says
    if "queue" in settings and not QUEUE_NAME.fullmatch(settings["queue"]):
        raise ConfigError(
            f"{where}.queue: {settings['queue']!r} is not a valid queue name (expected [A-Za-z0-9_.-]{{1,128}})"
        )
    if driver == "redis":
        url = settings.get("url", ConnectionConfig.url)
        from .drivers.keyspace import check_prefix
        from .drivers.redis_topology import SCHEMES, parse

        if url.partition("://")[0] not in SCHEMES:
            raise ConfigError(
                f"{where}.url: expected a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL, "
                f"got {redact_url(url)!r}{_source(raw_block.get('url'))}"
            )
        parse(url, f"{where}.url")
        check_prefix(settings.get("prefix", ConnectionConfig.prefix), f"{where}.prefix")
        if settings.get("wait_timeout_secs") == 0:
            raise ConfigError(f"{where}.wait_timeout_secs: expected a number > 0, got 0 (WAIT 0 waits for ever)")
        for key in ("block_timeout_secs", "poll_interval_secs"):
            if settings.get(key) == 0:
                # BRPOP with 0 blocks forever: the worker would never notice a signal while idle
                # (an idle reserving worker waits poll_interval_secs on the wake-up lists).
                raise ConfigError(f"{where}.{key}: expected a number > 0, got 0")
    if driver == "database":
        table = settings.get("table", ConnectionConfig.table)
        if not SQL_IDENTIFIER.fullmatch(table):
            raise ConfigError(
                f"{where}.table: expected a plain SQL table name ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters), "
                f"got {table!r}{_source(raw_block.get('table'))}"
            )
        for key, why in (
            ("block_timeout_secs", "a worker would never wait for a job"),
            ("poll_interval_secs", "an idle worker would query the database without pause"),
            ("visibility_timeout_secs", "the database driver always holds a taken job for a while"),
        ):
            if settings.get(key) == 0:
                raise ConfigError(f"{where}.{key}: expected a number > 0, got 0 ({why})")
    return ConnectionConfig(**settings)


def _resolve_database(
    conn: ConnectionConfig, raw_block: Any, databases: DatabaseConfig, root: Path, *, qfile: str, dbfile: str
) -> ConnectionConfig:
    """A database-driver connection with its database.toml connection looked up, or a ConfigError."""
    where = f"{qfile}: connections.{conn.name}"
    defined = ", ".join(sorted(databases.connections)) or "(none)"
    if conn.connection is None:
        key, origin = databases.default, f"{where}: no 'connection' key, so the default database connection"
    else:
        key, origin = conn.connection, f"{where}.connection"
    url = databases.connections.get(key)
    if url is None:
        source = _source(raw_block.get("connection")) if isinstance(raw_block, dict) else ""
        raise ConfigError(f"{origin}: {dbfile} has no database connection named {key!r}{source}; defined: {defined}")
    if url.dialect == "sqlite":
        if url.path == ":memory:":
            raise ConfigError(
                f"{origin}: database connection {key!r} is sqlite://:memory:, which lives inside one connection "
                "only; a queue needs a file (sqlite:///database/database.sqlite) or a server"
            )
        url = dataclasses.replace(url, path=str(root / (url.path or "")))
    return dataclasses.replace(conn, connection=key, database=url)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for logs and error messages.

    The password is hidden as it is written in the URL (percent-encoded or not), both in
    the user-info part and as a ``password=`` query argument (which redis-py also reads).
    """
    password = _userinfo_password(url)
    if password:
        url = url.replace(f":{password}@", ":***@")
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def _userinfo_password(url: str) -> str | None:
    """The password of ``url``'s user-info, as written (not percent-decoded), or ``None``."""
    try:
        return urlsplit(url).password
    except ValueError:
        # urlsplit refuses some URLs (an unclosed IPv6 bracket) that still hold a password:
        # split the user-info off the authority as urlsplit would have.
        authority = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
        return authority.rpartition("@")[0].partition(":")[2] or None


def parse_database_url(url: str, where: str = "database.toml") -> DatabaseUrl:
    """Parse ``sqlite:///rel``, ``sqlite:////abs``, ``sqlite://:memory:``, ``postgresql://``, ``mysql://``/``mariadb://``."""
    scheme, sep, rest = url.partition("://")
    dialect = DATABASE_SCHEMES.get(scheme.lower()) if sep else None
    if dialect is None:
        raise ConfigError(
            f"{where}: unsupported database URL {redact_url(url)!r}; expected one of "
            "sqlite:///relative/path, sqlite:////absolute/path, sqlite://:memory:, postgresql://…, mysql://…, mariadb://…"
        )
    if dialect == "sqlite":
        if rest == ":memory:":
            return DatabaseUrl("sqlite", url, path=":memory:")
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"{where}: sqlite URL {url!r} must look like sqlite:///relative/path or sqlite:////absolute/path"
            )
        return DatabaseUrl("sqlite", url, path=rest[1:])
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: bad port in database URL {redact_url(url)!r}") from None
    database = parts.path.lstrip("/") or None
    from urllib.parse import unquote

    return DatabaseUrl(
        dialect,
        url,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
    )


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables config sees: ``./.env`` overlaid by the process environment (which wins)."""
    return {**load_dotenv(Path(".env")), **(os.environ if environ is None else environ)}


def load_config(config_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``.env``, ``queue.toml`` and ``database.toml`` into a typed :class:`Config`."""
    env = environment(environ)
    if config_dir is None:
        config_dir = env.get("OXIDE_CONFIG_DIR") or "config"
    directory = Path(config_dir)
    queue_path = directory / "queue.toml"
    db_path = directory / "database.toml"
    qfile, dbfile = str(queue_path), str(db_path)

    raw_queue = _read_toml(queue_path, DEFAULT_QUEUE_TOML)
    # Top-level keys are expanded one by one so that errors read "<file>: <key>.<subkey>: ...".
    queue = {key: _expand(value, env, f"{qfile}: {key}") for key, value in raw_queue.items()}
    raw_connections = raw_queue.get("connections", {})
    connections_block = _table(queue.get("connections", {}), f"{qfile}: connections")
    connections = {
        name: _connection(name, raw_connections.get(name) if isinstance(raw_connections, dict) else None, block, qfile)
        for name, block in connections_block.items()
    }
    unknown_top = sorted(set(queue) - {"default", "connections", "failed"})
    if unknown_top:
        raise ConfigError(f"{qfile}: {unknown_top[0]}: unknown key; valid keys: connections, default, failed")
    default = _string(queue.get("default", "sync"), f"{qfile}: default")
    if default not in connections:
        raise ConfigError(
            f"{qfile}: default: no connection named {default!r}{_source(raw_queue.get('default'))}; "
            f"defined: {', '.join(sorted(connections)) or '(none)'}"
        )
    failed = _table(queue.get("failed", {"driver": "database"}), f"{qfile}: failed")
    failed_driver = _string(failed.get("driver", "database"), f"{qfile}: failed.driver")
    if failed_driver not in FAILED_DRIVERS:
        raise ConfigError(
            f"{qfile}: failed.driver: unknown failed-job driver {failed_driver!r}; valid: {', '.join(FAILED_DRIVERS)}"
        )

    raw_db = _read_toml(db_path, DEFAULT_DATABASE_TOML)
    db = {key: _expand(value, env, f"{dbfile}: {key}") for key, value in raw_db.items()}
    db_connections: dict[str, DatabaseUrl] = {}
    for name, raw in _table(db.get("connections", {}), f"{dbfile}: connections").items():
        block = _table(raw, f"{dbfile}: connections.{name}")
        url = _string(block.get("url"), f"{dbfile}: connections.{name}.url")
        db_connections[name] = parse_database_url(url, f"{dbfile}: connections.{name}.url")
    db_default = _string(db.get("default", "sqlite"), f"{dbfile}: default")
    if db_default not in db_connections and (db_connections or failed_driver == "database"):
        raise ConfigError(
            f"{dbfile}: default: no database connection named {db_default!r}; "
            f"defined: {', '.join(sorted(db_connections)) or '(none)'}"
        )
    databases = DatabaseConfig(db_default, db_connections)
    root = directory.resolve().parent
    for name, conn in connections.items():
        if conn.driver == "database":
            raw_block = raw_connections.get(name) if isinstance(raw_connections, dict) else None
            connections[name] = _resolve_database(conn, raw_block, databases, root, qfile=qfile, dbfile=dbfile)
    return Config(
        config_dir=directory,
        root=root,
        default=default,
        connections=connections,
        failed_driver=failed_driver,
        database=databases,
    )
