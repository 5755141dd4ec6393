"""oxide-queue: the queue layer of the Oxide framework, for Python.

Events are dispatched to listeners; queued listeners become JSON jobs on a
backend (``sync`` inline, or Redis lists ``oxide:queue:<name>``) that worker
processes (``oxide queue:work``) take in strict priority order.
"""

from __future__ import annotations

from .app import App
from .errors import (
    ConfigError,
    ConnectionUnavailable,
    JobDecodeError,
    JobEncodeError,
    ListenerNotRegistered,
    OxideError,
    QueueNameError,
)
from .events import Event, Listener, Mode
from .wire import Job

__all__ = [
    "App",
    "ConfigError",
    "ConnectionUnavailable",
    "Event",
    "Job",
    "JobDecodeError",
    "JobEncodeError",
    "Listener",
    "ListenerNotRegistered",
    "Mode",
    "OxideError",
    "QueueNameError",
]

__version__ = "0.1.0"
