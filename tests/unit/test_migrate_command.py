"""``oxide vendor:publish`` and ``oxide migrate`` in-process: what each says, file by file, on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxide.cli import main
from tests.conftest import ScratchDatabase

FAILED = "0001_01_01_000001_create_failed_jobs_table"
JOBS = "0001_01_01_000002_create_jobs_table"
OPS = "0001_01_01_000003_create_queue_operations_tables"


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("QUEUE_CONNECTION", "DB_CONNECTION", "DATABASE_URL", "OXIDE_APP", "OXIDE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_publish_says_what_it_wrote_kept_and_overwrote(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    migrations = app_dir / "database" / "migrations"
    failed, jobs, ops = migrations / f"{FAILED}.sql", migrations / f"{JOBS}.sql", migrations / f"{OPS}.sql"
    assert main(["vendor:publish", "queue"]) == 0
    assert capsys.readouterr().out == f"Published {failed}\nPublished {jobs}\nPublished {ops}\n"
    assert main(["vendor:publish", "queue"]) == 0
    assert capsys.readouterr().out == (
        f"Already published, unchanged: {failed}\nAlready published, unchanged: {jobs}\n"
        f"Already published, unchanged: {ops}\nNothing to publish.\n"
    )
    original = jobs.read_text()
    jobs.write_text(original + "-- a local edit\n")
    assert main(["vendor:publish", "queue"]) == 0
    assert capsys.readouterr().out == (
        f"Already published, unchanged: {failed}\nKept your edited copy (use --force to replace it): {jobs}\n"
        f"Already published, unchanged: {ops}\n"
    )
    assert main(["vendor:publish", "queue", "--force"]) == 0
    assert capsys.readouterr().out == (
        f"Already published, unchanged: {failed}\nOverwrote {jobs}\nAlready published, unchanged: {ops}\n"
    )
    assert jobs.read_text() == original


def test_migrate_names_each_migration_once_then_says_the_database_is_up_to_date(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A SQLite file in a directory that does not exist yet: migrate creates both.
    (app_dir / "config" / "database.toml").write_text(
        'default = "main"\n[connections.main]\nurl = "sqlite:///var/data/app.sqlite"\n'
    )
    assert main(["vendor:publish", "queue"]) == 0
    capsys.readouterr()
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == f"Migrated: {FAILED}\nMigrated: {JOBS}\nMigrated: {OPS}\n"
    assert (app_dir / "var" / "data" / "app.sqlite").is_file()
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Nothing to migrate: database 'main' (sqlite:///")
    assert out.endswith(" is up to date.\n")


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_migrate_on_a_server_database_creates_no_directory(
    app_dir: Path, capsys: pytest.CaptureFixture[str], scratch_db: ScratchDatabase
) -> None:
    (app_dir / "config" / "database.toml").write_text(
        f'default = "main"\n[connections.main]\nurl = "{scratch_db.url}"\n'
    )
    assert main(["vendor:publish", "queue"]) == 0
    capsys.readouterr()
    before = sorted(app_dir.rglob("*"))
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == f"Migrated: {FAILED}\nMigrated: {JOBS}\nMigrated: {OPS}\n"
    assert sorted(app_dir.rglob("*")) == before
