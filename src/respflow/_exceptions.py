"""respflow's exceptions.

RespflowError
├── UsageError          the library was called the wrong way (feed after close, ...)
└── RecordingError      a recording could not be read at all (unknown format, API error body)

Bad *content* in a stream never raises: it becomes a ``stream.error`` event, and the
stream goes on. Exceptions are for what the caller can fix.
"""

from __future__ import annotations

__all__ = ["RecordingError", "RespflowError", "UsageError"]


class RespflowError(Exception):
    """Root of every exception respflow raises on purpose."""


class UsageError(RespflowError):
    """respflow was used in a way it does not support; the message says what to do instead."""


class RecordingError(RespflowError):
    """A recording is empty, in a format respflow does not read, or holds no response."""
