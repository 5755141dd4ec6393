"""Strict-priority takes on fakeredis, model-based (see tests/priority_model.py)."""

from __future__ import annotations

import fakeredis
from hypothesis.stateful import run_state_machine_as_test

from tests.priority_model import PriorityMachine


def test_priority_ordering_on_fakeredis() -> None:
    def fresh() -> PriorityMachine:
        # A private server per example: examples never see each other's jobs.
        return PriorityMachine(fakeredis.FakeRedis(server=fakeredis.FakeServer()), "prio-", block_on_empty=True)

    run_state_machine_as_test(fresh)
