"""Subcommands for the schema: ``vendor:publish`` copies migrations into the app, ``migrate`` applies them."""

from __future__ import annotations

import argparse
from typing import Any

from . import Context

__all__ = ["register"]

MIGRATIONS_DIR = ("database", "migrations")


def register(sub: Any) -> None:
    """Add ``vendor:publish`` and ``migrate`` to the parser."""
    from ..db.migrations import PUBLISHABLE

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "vendor:publish",
        help="copy the queue's migrations into database/migrations/",
        formatter_class=fmt,
        description="Copy the SQL migrations of a package part into the application's database/migrations/\n"
        "(beside the config directory), where you can read and commit them; then run 'oxide migrate'.\n"
        "A file already there is left alone: unchanged, or edited by you (--force replaces it).\n\n"
        "example:\n  oxide vendor:publish queue && oxide migrate",
    )
    p.add_argument(
        "tag", choices=sorted(PUBLISHABLE), help="what to publish: 'queue' is the failed_jobs and jobs tables"
    )
    p.add_argument("--force", action="store_true", help="overwrite published files that you have edited")
    p.set_defaults(handler=vendor_publish)

    p = sub.add_parser(
        "migrate",
        help="create the tables of the published migrations",
        description="Apply every migration in database/migrations/ that has not run yet to the default database "
        "connection (database.toml), and record it in the oxide_migrations table. Running it again does nothing. "
        "A SQLite database file is created if it does not exist.",
    )
    p.set_defaults(handler=migrate)


def vendor_publish(ctx: Context, args: argparse.Namespace) -> int:
    """``vendor:publish TAG``: write the migration files, idempotently."""
    from ..db.migrations import publish

    directory = ctx.config.root.joinpath(*MIGRATIONS_DIR)
    results = publish(args.tag, directory, force=args.force)
    said = {
        "written": "Published",
        "overwritten": "Overwrote",
        "unchanged": "Already published, unchanged:",
        "kept": "Kept your edited copy (use --force to replace it):",
    }
    for result in results:
        print(f"{said[result.status]} {result.path}")
    if all(r.status == "unchanged" for r in results):
        print("Nothing to publish.")
    return 0


def migrate(ctx: Context, args: argparse.Namespace) -> int:
    """``migrate``: apply pending migrations to the default DB connection."""
    from ..db import database_for
    from ..db.migrations import Migrator, load_migrations

    directory = ctx.config.root.joinpath(*MIGRATIONS_DIR)
    migrations = load_migrations(directory)
    if not migrations:
        print(f"No migrations in {directory}; publish the queue's with: oxide vendor:publish queue")
        return 0
    url = ctx.config.database.get()
    if url.dialect == "sqlite" and url.path and url.path != ":memory:":
        # The file may be created, but sqlite will not create its directory.
        path = ctx.config.root / url.path
        path.parent.mkdir(parents=True, exist_ok=True)
    database = database_for(ctx.config, create=True)
    try:
        applied = Migrator(database).migrate(migrations)
    finally:
        database.close()
    for migration in applied:
        print(f"Migrated: {migration.name}")
    if not applied:
        print(f"Nothing to migrate: {database.name} is up to date.")
    return 0
