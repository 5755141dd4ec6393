"""The serde_json wire oracle (``tests/oracle``): one process for the whole test session.

The oracle is Rust's serde_json itself, built offline from Debian's crate sources by
``tests/oracle/build.sh``. Where cargo or the crates are missing the tests that need it are
skipped, or fail under ``OXIDE_REQUIRE_SERVICES=1``, like a missing server. ``OXIDE_WIRE_ORACLE``
may name an already built oracle binary instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import service_missing

ORACLE_DIR = Path(__file__).resolve().parent.parent / "oracle"
ORACLE_HOW = (
    "build it with `bash tests/oracle/build.sh` (as root or through sudo: it apt-get installs librust-serde-json-dev and "
    "librust-serde+serde-derive-dev, and cargo if there is none), or set OXIDE_WIRE_ORACLE to a built oracle binary"
)
NEEDS_PACKAGES = 3  # build.sh --no-install: cargo or a crate package is missing


@dataclass(frozen=True)
class Reply:
    """What serde_json made of one text: ``ok`` and its ``to_string``, or not ``ok`` and its error message."""

    ok: bool
    text: str


class WireOracle:
    """One long-lived oracle process; each request is answered before the next is sent."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._process = subprocess.Popen([binary, "--hex"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _ask(self, kind: str, text: str | bytes) -> Reply:
        data = text.encode("utf-8") if isinstance(text, str) else text
        stdin: IO[bytes] | None = self._process.stdin
        stdout: IO[bytes] | None = self._process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(f"{kind} {data.hex()}\n".encode("ascii"))
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the wire oracle {self.binary} stopped (exit status {self._process.wait()})")
        tag, _, rest = line.decode("utf-8").removesuffix("\n").partition(" ")
        if tag not in ("ok", "err"):
            raise RuntimeError(f"the wire oracle did not understand the request: {line!r}")
        return Reply(tag == "ok", rest)

    def job(self, text: str | bytes) -> Reply:
        """serde_json reading ``text`` as the SPEC's ``Job`` (unknown keys skipped) and writing it back."""
        return self._ask("job", text)

    def keep(self, text: str | bytes) -> Reply:
        """The same, with unknown keys kept in a ``BTreeMap`` and written after the job's own."""
        return self._ask("keep", text)

    def value(self, text: str | bytes) -> Reply:
        """serde_json reading ``text`` as a ``serde_json::Value`` and writing it back."""
        return self._ask("value", text)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


def _build_oracle() -> str:
    try:
        built = subprocess.run(
            ["bash", str(ORACLE_DIR / "build.sh"), "--no-install"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except FileNotFoundError as exc:  # no bash at all
        service_missing(f"the serde_json wire oracle ({exc})", ORACLE_HOW)
    if built.returncode == NEEDS_PACKAGES:
        service_missing(f"the serde_json wire oracle ({built.stderr.strip()})", ORACLE_HOW)
    if built.returncode != 0:
        pytest.fail(f"building the serde_json wire oracle failed:\n{built.stderr}", pytrace=False)
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def wire_oracle() -> Iterator[WireOracle]:
    """serde_json as a reference for ``oxide.wire``: built (or found) once, one process for the session."""
    binary = os.environ.get("OXIDE_WIRE_ORACLE") or _build_oracle()
    if not os.access(binary, os.X_OK):
        service_missing(f"the serde_json wire oracle at {binary}", ORACLE_HOW)
    oracle = WireOracle(binary)
    yield oracle
    oracle.close()
