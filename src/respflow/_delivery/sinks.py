"""The built-in sinks: a JSONL file, a structured log, a callback."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec

from .. import _events as ev
from .._events import encode_event
from .._exceptions import UsageError
from .redaction import redact, redacting_logger

__all__ = ["CallbackSink", "JsonlSink", "LogSink", "redact"]


class JsonlSink:
    """One normalized event per line, appended to ``path``.

    Lines are written whole: each write hands the file complete lines only, so a reader
    (or a crash) never sees half of one. ``batch=1`` writes every event as it comes;
    a larger batch writes every ``batch`` events and at the end.
    """

    def __init__(self, path: str | os.PathLike[str], *, batch: int = 1) -> None:
        if batch < 1:
            raise UsageError("batch must be at least 1")
        self.path = Path(path)
        self.batch = batch
        self._pending: list[bytes] = []
        self._fd: int | None = None

    async def send(self, event: ev.Event) -> None:
        self._pending.append(encode_event(event) + b"\n")
        if len(self._pending) >= self.batch:
            await self._flush()

    async def aclose(self) -> None:
        try:
            await self._flush()
        finally:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                await anyio.to_thread.run_sync(os.close, fd)

    async def _flush(self) -> None:
        if not self._pending:
            return
        data, self._pending = b"".join(self._pending), []
        await anyio.to_thread.run_sync(self._write, data)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


class LogSink:
    """Each event a structured log entry, with its response and item ids bound.

    Uses structlog when it is installed (``logger`` may be a structlog logger), else the
    standard ``logging`` module with the fields in ``extra``. Calls are synchronous, so
    it works the same on asyncio and trio. Deltas are left out unless ``deltas=True``:
    the finished code and text are logged whole. Secrets are redacted on both paths, by
    shape (keys, bearer and basic credentials, JWTs, credentials and key parameters in
    URLs) and by field name (``api_key``, ``authorization`` ...); numbers never are, so
    token usage is logged as it is.
    """

    def __init__(self, logger: Any = None, *, deltas: bool = False) -> None:
        self.deltas = deltas
        if logger is None:
            try:
                import structlog
            except ImportError:
                logger = redacting_logger("respflow.events")
            else:
                logger = structlog.get_logger("respflow.events")
        self._logger = logger
        self._structured = not isinstance(logger, logging.Logger)

    async def send(self, event: ev.Event) -> None:
        name = event.type
        if not self.deltas and name.endswith(".delta"):
            return
        fields = redact(msgspec.to_builtins(event))
        fields.pop("type", None)
        level = "warning" if name in ("stream.error", "stream.truncated", "file.failed") else "info"
        if self._structured:
            getattr(self._logger, level)(name, **fields)
        else:
            getattr(self._logger, level)(name, extra={"respflow": fields})

    async def aclose(self) -> None:
        return None


class CallbackSink:
    """Calls ``callback(event)`` for each event; it may be a plain or an async function."""

    def __init__(self, callback: Callable[[ev.Event], Awaitable[None] | None]) -> None:
        self.callback = callback

    async def send(self, event: ev.Event) -> None:
        result = self.callback(event)
        if inspect.isawaitable(result):
            await result

    async def aclose(self) -> None:
        return None


def jsonl_sink(argument: str) -> JsonlSink:
    """``jsonl:PATH`` (``jsonl`` alone: ``events.jsonl``)."""
    return JsonlSink(argument or "events.jsonl")


def log_sink(argument: str) -> LogSink:
    """``log`` or ``log:deltas`` (deltas too)."""
    if argument not in ("", "deltas"):
        raise UsageError(f"log takes no argument but 'deltas', not {argument!r}")
    return LogSink(deltas=argument == "deltas")
