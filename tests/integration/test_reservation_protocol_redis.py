"""The reservation protocol's stateful model (tests/property) run against the real Redis server.

The same rules and invariants as on fakeredis, on database 13, under a queue prefix unique to each
run of the machine; its keys are deleted when it ends.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import Phase, settings

from tests.conftest import REDIS_URL
from tests.hypothesis_profiles import examples, steps
from tests.property.test_reservation_protocol import ReservationMachine

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _server_answers(redis_server_url: str) -> None:
    """Skip (or, with OXIDE_REQUIRE_SERVICES=1, fail) when the server is not there."""


class RealRedisReservationMachine(ReservationMachine):
    def make_client(self) -> Any:
        import redis

        self.queue_prefix = f"t{uuid.uuid4().hex[:12]}-machine-"
        return redis.Redis.from_url(REDIS_URL)


# No shrinking: over a network each step costs round trips, and shrinking a failure would take
# Hypothesis's full five minutes; the fakeredis run of the same machine shrinks in-process.
RealRedisReservationMachine.TestCase.settings = settings(
    max_examples=examples(40),
    stateful_step_count=steps(40),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
TestReservationProtocolOnRedis = RealRedisReservationMachine.TestCase
