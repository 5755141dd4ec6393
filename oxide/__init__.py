"""oxide-queue: the queue layer of the Oxide framework, for Python.

Events are dispatched to listeners; queued listeners become JSON jobs on a
backend (``sync`` inline, or Redis lists ``oxide:queue:<name>``) that worker
processes (``oxide queue:work``) take in strict priority order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each public name and the module that defines it, imported on first use (PEP 562): a program
# that only needs the CLI's --help, or one submodule, does not pay for the whole package.
_HOMES = {
    "App": "app",
    "ConfigError": "errors",
    "ConnectionUnavailable": "errors",
    "Event": "events",
    "Job": "wire",
    "JobDecodeError": "errors",
    "JobEncodeError": "errors",
    "Listener": "events",
    "ListenerNotRegistered": "errors",
    "Mode": "events",
    "OxideError": "errors",
    "QueueNameError": "errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'oxide' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


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
