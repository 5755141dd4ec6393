"""The shop example's README tour, step by step, against a private Redis (the tour uses plain queue names)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.worker_procs import OUTCOME, SHOP, private_redis_server, run_oxide, worker_env

pytestmark = pytest.mark.redis


def test_dispatch_then_work_through_high_default_low(tmp_path: Path) -> None:
    with private_redis_server(tmp_path / "redis") as server:
        server.start()
        env = worker_env(server.url)  # run from examples/shop, reading its config/, as the tour does
        dispatched = subprocess.run(
            [sys.executable, "-m", "shop.place_orders", "2"],
            cwd=SHOP,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert dispatched.returncode == 0, dispatched.stderr
        assert "dispatched 2 registrations and 2 orders" in dispatched.stdout
        assert dispatched.stderr.count("audit: ") == 4  # the inline listener ran at dispatch

        result = run_oxide(
            SHOP, env, "--app", "shop.app:app", "queue:work", "--queue=high,default,low", "--stop-when-empty"
        )
    assert result.returncode == 0, result.stderr
    taken = [m.groupdict() for m in OUTCOME.finditer(result.stderr)]
    assert [t["queue"] for t in taken] == ["high"] * 2 + ["default"] * 4 + ["low"] * 4
    assert Counter((t["listener"].rsplit(".", 1)[1], t["outcome"]) for t in taken) == {
        ("ChargeCard", "done"): 2,
        ("SendWelcomeEmail", "done"): 2,
        ("SendReceipt", "done"): 2,
        ("UpdateSalesReport", "done"): 2,
        ("SyncLegacyCrm", "failed"): 2,
    }
    assert "reason=queue_empty" in result.stderr
