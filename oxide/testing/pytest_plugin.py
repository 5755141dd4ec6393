"""The pytest plugin of oxide-queue: fixtures for testing an application's listeners without Redis.

Loaded by pytest through the ``pytest11`` entry point as soon as the package is
installed. Every fixture name starts with ``oxide_`` so none can clash with a
project's own. Point the plugin at the application either in the ini file::

    [tool.pytest.ini_options]
    oxide_app = "myapp.app:app"      # MODULE:ATTR, an App or a callable returning one

or by overriding the ``oxide_app`` fixture in a ``conftest.py``.

Fixtures:

- ``oxide_app``: the application.
- ``oxide_queue_fake``: a :class:`~oxide.testing.QueueFake` on every connection of ``oxide_app``.
- ``oxide_event_fake``: an :class:`~oxide.testing.EventFake` on ``oxide_app`` (no listener runs).
- ``oxide_fakeredis``: a :class:`~oxide.testing.RedisFake`: the redis connections on fakeredis.
- ``oxide_failed_store``: a migrated ``failed_jobs`` table in a temporary SQLite file.
- ``oxide_work``: ``oxide_work(connection=None, queues=None, *, failed=None, policy=None)``
  runs the faked connections' jobs through the real worker until none is left.

Everything a fixture installs is removed when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from ..app import App
    from ..attempts import AttemptPolicy
    from ..failed.store import DatabaseFailedJobProvider
    from .drain import FailedJobLog, WorkResult
    from .event_fake import EventFake
    from .queue_fake import QueueFake
    from .redis_fake import RedisFake

__all__ = [
    "Work",
    "oxide_app",
    "oxide_event_fake",
    "oxide_failed_store",
    "oxide_fakeredis",
    "oxide_queue_fake",
    "oxide_work",
    "pytest_addoption",
]

INI_APP = "oxide_app"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_APP,
        "the application the oxide_* fixtures use, as MODULE:ATTR (an oxide.App or a callable returning one)",
        default="",
    )


@pytest.fixture
def oxide_app(request: pytest.FixtureRequest) -> App:
    """The application under test, from the ``oxide_app = MODULE:ATTR`` ini option; override it to build your own."""
    from ..app import load_app
    from ..errors import ConfigError

    spec = str(request.config.getini(INI_APP) or "").strip()
    if not spec:
        pytest.fail(
            'the oxide_* fixtures need your application: set oxide_app = "MODULE:ATTR" under '
            "[tool.pytest.ini_options] in pyproject.toml (or [pytest] in pytest.ini), "
            "or define an oxide_app fixture in conftest.py that returns your oxide.App",
            pytrace=False,
        )
    try:
        return load_app(spec)
    except ConfigError as exc:
        pytest.fail(f"ini option {INI_APP} = {spec!r}: {exc}", pytrace=False)


@pytest.fixture
def oxide_queue_fake(oxide_app: App) -> Iterator[QueueFake]:
    """Every job ``oxide_app`` pushes, on any connection, is recorded instead of sent."""
    from .queue_fake import QueueFake

    with QueueFake(oxide_app) as fake:
        yield fake


@pytest.fixture
def oxide_event_fake(oxide_app: App) -> Iterator[EventFake]:
    """Every event ``oxide_app`` dispatches is recorded, and no listener runs."""
    from .event_fake import EventFake

    with EventFake(oxide_app) as fake:
        yield fake


@pytest.fixture
def oxide_fakeredis(oxide_app: App) -> Iterator[RedisFake]:
    """The redis connections of ``oxide_app`` on a private fakeredis server, through the real Redis driver."""
    from .redis_fake import RedisFake

    with RedisFake(oxide_app) as fake:
        yield fake
    fake.client.close()  # pytest resumes a fixture's generator after its test, whatever the test did


@pytest.fixture
def oxide_failed_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFailedJobProvider]:
    """A ``failed_jobs`` table, migrated, in a SQLite file of this test; pass it to ``oxide_work(failed=...)``."""
    from .failed_store import sqlite_failed_store

    store = sqlite_failed_store(Path(tmp_path_factory.mktemp("oxide-failed-jobs")))
    try:
        yield store
    finally:
        store.database.close()


class Work(Protocol):
    """The ``oxide_work`` fixture: run the faked connections' jobs until none is left."""

    def __call__(
        self,
        connection: str | None = None,
        queues: Sequence[str] | None = None,
        *,
        failed: FailedJobLog | None = None,
        policy: AttemptPolicy | None = None,
        max_jobs: int = 1000,
        seed: int = 0,
    ) -> WorkResult:
        """See :func:`oxide.testing.drain`."""


@pytest.fixture
def oxide_work(oxide_app: App) -> Work:
    """Run every job waiting on ``oxide_app``'s faked connections through the real worker, until none is left.

    Use it with ``oxide_queue_fake`` or ``oxide_fakeredis``; it returns a
    :class:`~oxide.testing.WorkResult`. Failures are retried and recorded as the
    worker does in production; retries wait on a fake clock, not in real time.
    """
    from .drain import drain

    def work(
        connection: str | None = None,
        queues: Sequence[str] | None = None,
        *,
        failed: FailedJobLog | None = None,
        policy: AttemptPolicy | None = None,
        max_jobs: int = 1000,
        seed: int = 0,
    ) -> WorkResult:
        return drain(oxide_app, connection, queues, failed=failed, policy=policy, max_jobs=max_jobs, seed=seed)

    return work
