"""Migrations: SQL files published into an application, applied once each, recorded.

A migration is one ``.sql`` file that serves every dialect::

    -- oxide-migration
    -- Why the table exists (free comment lines).

    -- dialect: sqlite
    CREATE TABLE IF NOT EXISTS failed_jobs (...);
    -- dialect: postgresql
    ...
    -- dialect: mysql
    ...

The first line marks the file as ours (other tools' ``.sql`` files in the same
directory are left alone). ``-- dialect: NAME`` starts the statements for one
dialect (``mysql`` serves MariaDB too); a statement ends with ``;`` at the end of
a line; whole-line ``--`` comments are dropped. The file name without ``.sql``
is the migration's name; files apply in name order. Applied names are recorded
in the ``oxide_migrations`` table, each with a batch number (one per ``migrate`` run).

Statements use ``IF NOT EXISTS`` because MySQL commits DDL as it goes: a
migration interrupted there can simply run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from ..errors import OxideError
from . import Database, DatabaseError
from .dialects import DIALECTS

__all__ = [
    "HEADER",
    "MIGRATIONS_TABLE",
    "PUBLISHABLE",
    "Migration",
    "MigrationError",
    "Migrator",
    "PublishResult",
    "load_migrations",
    "parse_migration",
    "publish",
]

HEADER = "-- oxide-migration"
MIGRATIONS_TABLE = "oxide_migrations"
_DIALECT_MARK = "-- dialect:"

# What `oxide vendor:publish TAG` copies: (package, file) pairs per tag: the failed_jobs table,
# the jobs table of the database queue driver, and its operator tables (pauses, workers, metrics).
PUBLISHABLE: Mapping[str, Sequence[tuple[str, str]]] = {
    "queue": (
        ("oxide.failed", "migrations/0001_01_01_000001_create_failed_jobs_table.sql"),
        ("oxide.drivers", "migrations/0001_01_01_000002_create_jobs_table.sql"),
        ("oxide.ops", "migrations/0001_01_01_000003_create_queue_operations_tables.sql"),
    ),
}


class MigrationError(OxideError):
    """A migration file is malformed, or lacks statements for the database's dialect."""


@dataclass(frozen=True)
class Migration:
    """One parsed migration file: its name and its statements per dialect."""

    name: str
    path: Path
    statements: Mapping[str, tuple[str, ...]]

    def for_dialect(self, dialect: str) -> tuple[str, ...]:
        """The statements to run on ``dialect``, or a MigrationError naming the file."""
        try:
            return self.statements[dialect]
        except KeyError:
            raise MigrationError(
                f"{self.path}: no '{_DIALECT_MARK} {dialect}' section; it has: {', '.join(self.statements) or 'none'}"
            ) from None


def parse_migration(path: Path, text: str | None = None) -> Migration:
    """Parse one migration file (``text`` if given, else read from ``path``)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise MigrationError(f"{path}: not an oxide migration (its first line must be {HEADER!r})")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    pending: list[str] = []
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if line.lower().startswith(_DIALECT_MARK):
            if pending:
                raise MigrationError(f"{path}:{number}: statement before this line does not end with ';'")
            name = line[len(_DIALECT_MARK) :].strip().lower()
            if name not in DIALECTS:
                raise MigrationError(f"{path}:{number}: unknown dialect {name!r}; valid: {', '.join(DIALECTS)}")
            if name in sections:
                raise MigrationError(f"{path}:{number}: second '{_DIALECT_MARK} {name}' section")
            current = sections[name] = []
            continue
        if not line or line.startswith("--"):
            continue
        if current is None:
            raise MigrationError(f"{path}:{number}: SQL before the first '{_DIALECT_MARK} NAME' line")
        pending.append(raw.rstrip())
        if line.endswith(";"):
            current.append("\n".join(pending).rstrip()[:-1].rstrip())
            pending = []
    if pending:
        raise MigrationError(f"{path}: last statement does not end with ';'")
    return Migration(path.stem, path, {name: tuple(stmts) for name, stmts in sections.items()})


def load_migrations(directory: Path) -> list[Migration]:
    """Every oxide migration in ``directory``, in name order; other ``.sql`` files are skipped."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        if text.startswith(HEADER):
            found.append(parse_migration(path, text))
    return found


@dataclass(frozen=True)
class PublishResult:
    """What publishing did to one file: "written", "unchanged", "kept" (differs, not forced) or "overwritten"."""

    path: Path
    status: str


def publish(tag: str, directory: Path, *, force: bool = False) -> list[PublishResult]:
    """Copy the migrations of ``tag`` into ``directory``; an edited copy is kept unless ``force``."""
    results = []
    for package, name in PUBLISHABLE[tag]:
        source = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        target = directory / Path(name).name
        if target.exists():
            current = target.read_text(encoding="utf-8")
            if current == source:
                results.append(PublishResult(target, "unchanged"))
                continue
            if not force:
                results.append(PublishResult(target, "kept"))
                continue
        status = "overwritten" if target.exists() else "written"
        directory.mkdir(parents=True, exist_ok=True)
        # Written whole to a temporary name, then renamed: a crash leaves no half migration behind.
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(source, encoding="utf-8")
        temporary.replace(target)
        results.append(PublishResult(target, status))
    return results


class Migrator:
    """Applies pending migrations to one database and records them in ``oxide_migrations``."""

    def __init__(self, database: Database, table: str = MIGRATIONS_TABLE) -> None:
        self.database = database
        self.table = table

    def ensure_table(self) -> None:
        """Create the record table if it is not there yet."""
        self.database.execute(self.database.dialect.create_migrations_table(self.table))

    def applied(self) -> set[str]:
        """Names of the migrations already applied."""
        self.ensure_table()
        q = self.database.dialect.quote
        return {row[0] for row in self.database.query(f"SELECT {q('migration')} FROM {q(self.table)}")}

    def pending(self, migrations: Iterable[Migration]) -> list[Migration]:
        """The migrations not applied yet, in order."""
        done = self.applied()
        return [m for m in migrations if m.name not in done]

    def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        """Apply every pending migration, each in its own transaction with its record; returns those applied."""
        dialect = self.database.dialect
        todo = self.pending(migrations)
        for migration in todo:
            migration.for_dialect(dialect.name)  # refuse before applying anything if one cannot run here
        if not todo:
            return []
        q = dialect.quote
        rows = self.database.query(f"SELECT MAX({q('batch')}) FROM {q(self.table)}")
        batch = int(rows[0][0] or 0) + 1
        record = f"INSERT INTO {q(self.table)} ({q('migration')}, {q('batch')}, {q('applied_at')}) VALUES (?, ?, ?)"
        for migration in todo:
            try:
                with self.database.transaction() as session:
                    for statement in migration.for_dialect(dialect.name):
                        session.execute(statement)
                    session.execute(record, (migration.name, batch, dialect.timestamp_param(datetime.now(UTC))))
            except DatabaseError as exc:
                raise DatabaseError(f"migration {migration.name} failed and was not recorded: {exc}") from None
        return todo
