"""An application for worker subprocesses: its listener appends each event's token to a file.

The file is named by ``OXIDE_TEST_RECORD_FILE``; a line is written only when the listener has run,
so the file is the record of which jobs completed, and how often.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from oxide import App, Event, Mode


@dataclass
class Tick(Event):
    event_name = "test.tick"

    token: str
    sleep_ms: float = 0.0
    after_ms: float = 0.0  # work after the effect: a kill then costs a duplicate, not a re-run


class RecordTick:
    def handle(self, event: Tick) -> None:
        if event.sleep_ms:
            time.sleep(event.sleep_ms / 1000)
        with open(os.environ["OXIDE_TEST_RECORD_FILE"], "a", encoding="utf-8") as record:
            record.write(event.token + "\n")
        if event.after_ms:
            time.sleep(event.after_ms / 1000)


def recorder_app() -> App:
    app = App()
    app.listen(Tick, RecordTick, Mode.queue())
    return app


@dataclass
class Stuck(Event):
    event_name = "test.stuck"

    token: str


class Stubborn:
    """Records that it started, then sits for a minute where the job timeout cannot reach it.

    Like a long C call: SIGALRM is blocked in this thread, so the soft timeout's JobTimedOut is
    never raised here (a listener swallowing BaseException in a loop is stuck the same way, but a
    signal landing between two of its statements would get through).
    """

    def handle(self, event: Stuck) -> None:
        with open(os.environ["OXIDE_TEST_RECORD_FILE"], "a", encoding="utf-8") as record:
            record.write(f"start-{event.token}\n")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)


def stubborn_app() -> App:
    app = App()
    app.listen(Stuck, Stubborn, Mode.queue())
    return app


@dataclass
class Chore(Event):
    event_name = "test.chore"

    token: str


class _Fails:
    def handle(self, event: Chore) -> None:
        raise RuntimeError(f"{type(self).__name__} fails {event.token}")


class OwnTries(_Fails):
    """tries(2) and backoff(0.05) of its own."""


class CliTries(_Fails):
    """backoff(0) of its own; tries from the command line."""


class CliEverything(_Fails):
    """Nothing of its own: tries, backoff and timeout from the command line."""


class OwnTimeout:
    """tries(1) and timeout(0.5) of its own; sleeps far longer."""

    def handle(self, event: Chore) -> None:
        time.sleep(20)


def override_app() -> App:
    app = App()
    app.listen(Chore, OwnTries, Mode.queue().tries(2).backoff(0.05))
    app.listen(Chore, CliTries, Mode.queue().backoff(0))
    app.listen(Chore, CliEverything, Mode.queue())
    app.listen(Chore, OwnTimeout, Mode.queue().tries(1).timeout(0.5))
    return app
