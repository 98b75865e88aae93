"""A sink many readers can follow: a bounded history per response, read from any cursor.

Browsers come and go: a tab opens late, a phone drops its connection, a reader is slow.
The :class:`Hub` keeps the last ``history`` events of each response; each reader follows
the log from a cursor of its own (``Last-Event-ID``), so a reconnect gets exactly what it
missed. Readers share the log, so a thousand of them cost no per-reader buffers; one that
falls ``max_lag`` events behind is let go (``disconnect``), to come back with its cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from .. import _events as ev
from .._events import parse_cursor
from .._exceptions import RespflowError, TooOld

__all__ = ["Hub", "Lagged", "Reader", "TooOld"]


class Lagged(RespflowError):
    """A reader fell too far behind the stream and was let go; reconnect with its cursor."""


@dataclass(slots=True)
class _Log:
    events: list[ev.Event] = field(default_factory=list)
    base: int = 0
    """The absolute position of ``events[0]``."""
    grown: anyio.Event = field(default_factory=anyio.Event)
    ended: bool = False

    @property
    def end(self) -> int:
        return self.base + len(self.events)

    def at(self, position: int) -> ev.Event:
        return self.events[position - self.base]


class Hub:
    """A :class:`respflow.Sink` that readers subscribe to, response by response.

    Args:
        history: events kept per response (older ones are forgotten).
        max_lag: how far behind the newest event a reader may fall before it is let go.
        max_responses: responses kept (the oldest is forgotten first).
    """

    def __init__(
        self, *, history: int = 10_000, max_lag: int = 5_000, max_responses: int = 1_000
    ) -> None:
        self.history = history
        self.max_lag = max_lag
        self.max_responses = max_responses
        self._logs: dict[str, _Log] = {}
        self._closed = False

    # -- the sink side ------------------------------------------------------------------

    async def send(self, event: ev.Event) -> None:
        log = self._log(event.response_id)
        log.events.append(event)
        if len(log.events) > 2 * self.history:  # trim in steps: appends stay O(1)
            cut = len(log.events) - self.history
            del log.events[:cut]
            log.base += cut
        if isinstance(event, ev.END_TYPES):
            log.ended = True
        log.grown.set()
        log.grown = anyio.Event()

    async def aclose(self) -> None:
        """Nothing: a hub outlives the pipelines that feed it (each response's own end,
        or the ``stream.truncated`` a stopped pipeline sends, ends its readers)."""

    def close(self) -> None:
        """End every reader now, as at shutdown."""
        self._closed = True
        for log in self._logs.values():
            log.ended = True
            log.grown.set()

    def _log(self, response_id: str) -> _Log:
        log = self._logs.get(response_id)
        if log is None:
            while len(self._logs) >= self.max_responses:
                oldest = next(iter(self._logs))
                gone = self._logs.pop(oldest)
                gone.ended = True
                gone.grown.set()
            log = self._logs[response_id] = _Log()
        return log

    # -- the reader side ----------------------------------------------------------------

    def responses(self) -> list[str]:
        """The responses the hub has events of."""
        return list(self._logs)

    def subscribe(self, response_id: str, *, after: str | None = None) -> Reader:
        """A reader of a response from the event after cursor ``after`` (from the start
        if None) to its end; a response not seen yet is waited for.

        Raises:
            TooOld: ``after`` is older than the history.
        """
        log = self._log(response_id)
        return Reader(self, response_id, log, self._position(log, after))

    @staticmethod
    def _position(log: _Log, after: str | None) -> int:
        if after is None:
            return log.base
        wanted = parse_cursor(after)
        if log.events and log.base > 0 and parse_cursor(log.events[0].cursor) > wanted:
            raise TooOld(f"the events after {after} are no longer kept")
        low, high = log.base, log.end  # cursors are ordered: find the first one after
        while low < high:
            mid = (low + high) // 2
            if parse_cursor(log.at(mid).cursor) <= wanted:
                low = mid + 1
            else:
                high = mid
        return low


class Reader:
    """An async iterator over one response's events, for one reader.

    Its place is kept in the object, so a wait for the next event may be cancelled (a
    heartbeat timeout) and resumed. Raises :class:`Lagged` when more than ``max_lag``
    events that arrived after it joined are waiting for it (the history it joined to
    catch up on does not count), or when the history moved past it.
    """

    def __init__(self, hub: Hub, response_id: str, log: _Log, position: int) -> None:
        self._hub = hub
        self.response_id = response_id
        self._log = log
        self._position = position
        self._done = False
        # Catching up on the history is not falling behind: only events that arrived
        # after the reader came count toward max_lag.
        self._joined_at = log.end

    def __aiter__(self) -> Reader:
        return self

    async def __anext__(self) -> ev.Event:
        log, hub = self._log, self._hub
        while not self._done:
            position = self._position
            if position < log.base:
                raise Lagged(
                    f"the reader of {self.response_id} fell behind the history; "
                    "reconnect with its last cursor"
                )
            if position < log.end:
                behind = log.end - max(position, self._joined_at)
                if behind > hub.max_lag:
                    raise Lagged(
                        f"the reader of {self.response_id} fell {behind} events behind "
                        f"(max_lag {hub.max_lag}); reconnect with its last cursor"
                    )
                event = log.at(position)
                self._position = position + 1
                self._done = isinstance(event, ev.END_TYPES)
                return event
            if log.ended or hub._closed:
                break
            await log.grown.wait()
        raise StopAsyncIteration
