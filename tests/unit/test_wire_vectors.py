"""Every wire vector produced by Rust's serde_json must be reproduced byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oxide.wire import Job

VECTORS = [json.loads(line) for line in (Path(__file__).parent.parent / "data" / "wire-vectors.jsonl").open()]


def test_all_vectors_are_loaded() -> None:
    assert len(VECTORS) == 313


@pytest.mark.parametrize("vector", VECTORS, ids=[f"v{i:03d}" for i in range(len(VECTORS))])
def test_vector_reencodes_exactly_as_serde_json(vector: dict[str, str]) -> None:
    job = Job.from_json(vector["input"])
    assert job.to_json() == vector["expected"]
    # The canonical form is a fixed point: reading it back writes it again unchanged.
    assert Job.from_json(vector["expected"].encode("utf-8")).to_json() == vector["expected"]
