"""An application for worker subprocesses: its listener appends each event's token to a file.

The file is named by ``OXIDE_TEST_RECORD_FILE``; a line is written only when the listener has run,
so the file is the record of which jobs completed, and how often.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from oxide import App, Event, Mode


@dataclass
class Tick(Event):
    event_name = "test.tick"

    token: str
    sleep_ms: float = 0.0


class RecordTick:
    def handle(self, event: Tick) -> None:
        if event.sleep_ms:
            time.sleep(event.sleep_ms / 1000)
        with open(os.environ["OXIDE_TEST_RECORD_FILE"], "a", encoding="utf-8") as record:
            record.write(event.token + "\n")


def recorder_app() -> App:
    app = App()
    app.listen(Tick, RecordTick, Mode.queue())
    return app
