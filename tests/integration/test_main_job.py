"""The README's first command: the main job runs on the embedded default, with no server at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_main_job_runs_with_no_server(tmp_path: Path) -> None:
    # Point every server variable at nothing: the job must not need Redis, PostgreSQL or MariaDB.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXIDE_", "QUEUE_", "REDIS_", "DB_", "DATABASE_"))}
    env["REDIS_URL"] = "redis://127.0.0.1:1"
    result = subprocess.run(
        [sys.executable, "examples/main_job.py", "--orders", "2", "--keep", str(tmp_path / "shop")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    outcomes = re.findall(r"queue=(\w+) event=\S+ listener=shop\.listeners\.(\w+) .*outcome=(\w+)", out)
    assert [q for q, _, _ in outcomes] == ["high"] * 2 + ["default"] * 4 + ["low"] * 4
    assert (
        sorted((listener, outcome) for _, listener, outcome in outcomes if outcome == "failed")
        == [("SyncLegacyCrm", "failed")] * 2
    )
    assert "reason=queue_empty connection=database jobs=10 failed=2" in out
    # The last step lists the two failed jobs, read back from the SQLite file.
    table = out[out.rindex("$ oxide queue:failed") :].splitlines()
    rows = [line for line in table if re.match(r"\d+\s+[0-9a-f-]{36}\s+database\s+low\s+shop\.order_placed", line)]
    assert len(rows) == 2, out
    assert (tmp_path / "shop" / "database" / "database.sqlite").is_file()
