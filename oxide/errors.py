"""The one exception root of the package and its few leaves."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionUnavailable",
    "JobDecodeError",
    "JobEncodeError",
    "JobTimedOut",
    "ListenerNotRegistered",
    "MaxAttemptsExceeded",
    "OxideError",
    "QueueNameError",
]


class OxideError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(OxideError):
    """A configuration file, key or value is wrong; the message names file, key and fix."""


class QueueNameError(OxideError, ValueError):
    """A queue name outside ``[A-Za-z0-9_.-]{1,128}``."""


class JobEncodeError(OxideError, ValueError):
    """A value that the wire format cannot carry; the message names its path."""


class JobDecodeError(OxideError, ValueError):
    """A message that is not a valid job."""


class ListenerNotRegistered(OxideError, LookupError):
    """A job names a listener or event this application has not registered."""


class ConnectionUnavailable(OxideError):
    """A backend server could not be reached."""


class MaxAttemptsExceeded(OxideError):
    """A job was taken as often as its listener's ``tries`` allow, by workers that died running it."""


class JobTimedOut(BaseException):
    """A listener ran past its timeout and was interrupted.

    Like ``KeyboardInterrupt`` and ``asyncio.CancelledError`` it derives from
    ``BaseException``, so a listener's ``except Exception`` cannot swallow it.
    """
