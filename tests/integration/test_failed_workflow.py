"""The failed-job workflow end to end, through the real command line and a real worker.

A listener raises → the worker records a row → `queue:failed` lists it → the cause is fixed →
`queue:retry 1` pushes the job back and deletes the row → the next worker runs it. Queues and
failed_jobs live in one SQLite file (the database driver), so no server is needed. Then: a
failure parked while the table was missing reaches failed_jobs once an idle worker sees the
table back, with no command run by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

APP = textwrap.dedent(
    """
    from dataclasses import dataclass
    from pathlib import Path

    from oxide import App, Event, Mode

    @dataclass
    class Invoiced(Event):
        event_name = "billing.invoiced"
        invoice: int

    class SendInvoice:
        def handle(self, event: Invoiced) -> None:
            if not Path("smtp-fixed").exists():
                raise ConnectionError(f"smtp down, invoice {event.invoice} not sent")
            with open("sent.txt", "a") as out:
                out.write(f"{event.invoice}\\n")

    app = App()
    app.listen(Invoiced, SendInvoice, Mode.queue().on_queue("mail"))
    """
)
QUEUE_TOML = """
default = "database"
[connections.database]
driver = "database"
poll_interval_secs = 0.05
[failed]
driver = "database"
"""


def make_project(root: Path) -> dict[str, str]:
    (root / "config").mkdir(parents=True)
    (root / "config" / "queue.toml").write_text(QUEUE_TOML)
    (root / "billing.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXIDE_", "QUEUE_", "REDIS_", "DB_", "DATABASE_"))}
    env.update(OXIDE_APP="billing:app", PYTHONPATH=str(root))
    return env


def oxide(root: Path, env: dict[str, str], *args: str, status: int = 0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "oxide", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result.stdout + result.stderr


def dispatch(root: Path, env: dict[str, str], invoice: int) -> None:
    code = f"from billing import app, Invoiced; app.dispatch(Invoiced(invoice={invoice})); app.close()"
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, timeout=60)


def test_raise_list_fix_retry_run(tmp_path: Path) -> None:
    env = make_project(tmp_path)
    oxide(tmp_path, env, "vendor:publish", "queue")
    oxide(tmp_path, env, "migrate")
    dispatch(tmp_path, env, 41)

    log = oxide(tmp_path, env, "queue:work", "--queue=mail", "--stop-when-empty")
    assert "outcome=failed error=ConnectionError: smtp down, invoice 41 not sent" in log
    [row] = json.loads(oxide(tmp_path, env, "queue:failed", "--json"))
    assert (row["id"], row["queue"], row["event_name"]) == (1, "mail", "billing.invoiced")
    assert json.loads(row["payload"]) == {"invoice": 41}
    assert "smtp down, invoice 41 not sent" in row["exception"]

    (tmp_path / "smtp-fixed").touch()  # the fix
    assert "Retried 1 failed job(s)." in oxide(tmp_path, env, "queue:retry", "1")
    assert json.loads(oxide(tmp_path, env, "queue:failed", "--json")) == []
    log = oxide(tmp_path, env, "queue:work", "--queue=mail", "--stop-when-empty")
    assert "outcome=done" in log
    assert (tmp_path / "sent.txt").read_text() == "41\n"
    assert row["uuid"] in log  # the retried job is the same job


def test_an_idle_worker_moves_parked_failures_into_the_table(tmp_path: Path) -> None:
    env = make_project(tmp_path)
    oxide(tmp_path, env, "vendor:publish", "queue")
    oxide(tmp_path, env, "migrate")
    dispatch(tmp_path, env, 7)
    import sqlite3

    db = tmp_path / "database" / "database.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE failed_jobs RENAME TO failed_jobs_away")  # the table is missing
    log = oxide(tmp_path, env, "queue:work", "--queue=mail", "--stop-when-empty")
    assert "outcome=failed" in log
    spool = tmp_path / "storage" / "oxide" / "failed-jobs.spool"
    assert spool.read_text().count("\n") == 1  # parked, not lost
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE failed_jobs_away RENAME TO failed_jobs")  # the table is back

    # Nothing to do but wait: the worker finds its queue empty and moves the parked failure in.
    oxide(tmp_path, env, "queue:work", "--queue=mail", "--stop-when-empty")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT queue, payload FROM failed_jobs").fetchall()
    assert rows == [("mail", '{"invoice":7}')]
    assert not spool.exists() or spool.read_text() == ""
