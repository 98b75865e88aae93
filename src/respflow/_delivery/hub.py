"""A sink many readers can follow: a bounded history per response, read from any cursor.

Browsers come and go: a tab opens late, a phone drops its connection, a reader is slow.
The :class:`Hub` keeps the last ``history`` events of each response; each reader follows
the log from a cursor of its own (``Last-Event-ID``), so a reconnect gets exactly what it
missed. Readers share the log, so a thousand of them cost no per-reader buffers; one that
falls ``max_lag`` events behind is let go (``disconnect``), to come back with its cursor.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from .. import _events as ev
from .._events import parse_cursor
from .._exceptions import RespflowError, TooOld, UsageError
from .broker import notify, watch

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
    evicted: bool = False
    """Pushed out by newer responses before its end: its readers must reconnect."""
    floor: tuple[int, int] | None = None
    """Every event after this cursor is kept (None: every event from the response's start)."""
    watchers: list[Callable[[bool], None]] = field(default_factory=list)
    """Called as it grows (see ``Reader.on_publish``)."""

    def wake(self) -> None:
        self.grown.set()
        self.grown = anyio.Event()
        if self.watchers:
            notify(self.watchers, self.ended or self.evicted)

    @property
    def end(self) -> int:
        return self.base + len(self.events)

    def at(self, position: int) -> ev.Event:
        return self.events[position - self.base]


@dataclass(slots=True)
class _Waiting:
    """Readers of a response the hub has not seen yet. It lives only as long as one of
    them does, so asking for ids that never come costs nothing lasting and pushes out no
    response."""

    arrived: anyio.Event = field(default_factory=anyio.Event)
    readers: weakref.WeakSet[Reader] = field(default_factory=weakref.WeakSet)
    alive: int = 0


class Hub:
    """A :class:`respflow.Sink` that readers subscribe to, response by response.

    Args:
        history: events kept per response (older ones are forgotten).
        max_lag: how far behind the newest event a reader may fall before it is let go.
        max_responses: responses kept. When a new one comes, the oldest that has ended is
            forgotten first; only if none has, the oldest still running (its readers are
            let go with :class:`Lagged`). Readers waiting for a response that has not come
            yet take no place.
    """

    def __init__(
        self, *, history: int = 10_000, max_lag: int = 5_000, max_responses: int = 1_000
    ) -> None:
        if history < 1 or max_lag < 1 or max_responses < 1:
            raise UsageError(
                f"history, max_lag and max_responses must each be at least 1 (got {history}, "
                f"{max_lag} and {max_responses}): a Hub that keeps no event, or lets every "
                "reader go at once, delivers nothing"
            )
        self.history = history
        self.max_lag = max_lag
        self.max_responses = max_responses
        self._logs: dict[str, _Log] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._closed = False

    # -- the sink side ------------------------------------------------------------------

    async def send(self, event: ev.Event) -> None:
        log = self._logs.get(event.response_id) or self._open(event)
        log.events.append(event)
        if len(log.events) > 2 * self.history:  # trim in steps: appends stay O(1)
            cut = len(log.events) - self.history
            log.floor = parse_cursor(log.events[cut - 1].cursor)
            del log.events[:cut]
            log.base += cut
        if isinstance(event, ev.END_TYPES):
            log.ended = True
        log.wake()

    async def aclose(self) -> None:
        """Nothing: a hub outlives the pipelines that feed it (each response's own end,
        or the ``stream.truncated`` a stopped pipeline sends, ends its readers)."""

    def close(self) -> None:
        """End every reader now, as at shutdown."""
        self._closed = True
        for log in self._logs.values():
            log.ended = True
            log.wake()
        for waiting in self._waiting.values():
            waiting.arrived.set()

    def _open(self, first: ev.Event) -> _Log:
        """The log of a response the hub sees for the first time, ``first`` its first event."""
        while len(self._logs) >= self.max_responses:
            self._forget_one()
        log = self._logs[first.response_id] = _Log()
        if not _starts_a_response(first):
            # Joined mid-response (a resumed stream, or one pushed out and come back):
            # what came before is not here, and a reader asking for it must hear so.
            log.floor = parse_cursor(first.cursor)
        waiting = self._waiting.pop(first.response_id, None)
        if waiting is not None:
            for reader in list(waiting.readers):
                reader._arrived(log)
            waiting.arrived.set()
        return log

    def _forget_one(self) -> None:
        oldest = next((rid for rid, log in self._logs.items() if log.ended), None)
        if oldest is None:
            oldest = next(iter(self._logs))
        gone = self._logs.pop(oldest)
        if not gone.ended:
            gone.evicted = True
            gone.wake()

    # -- the reader side ----------------------------------------------------------------

    def responses(self) -> list[str]:
        """The responses the hub has events of."""
        return list(self._logs)

    def subscribe(self, response_id: str, *, after: str | None = None) -> Reader:
        """A reader of a response from the event after cursor ``after`` (from the start
        if None) to its end; a response not seen yet is waited for.

        Raises:
            TooOld: ``after`` is older than the history. For a response not seen yet,
                the reader raises it once the response comes, if its first event is
                already past ``after``.
            ValueError: ``after`` is not a cursor.
        """
        wanted = parse_cursor(after) if after is not None else None
        reader = Reader(self, response_id, wanted, after)
        log = self._logs.get(response_id)
        if log is not None:
            reader._attach(log, _position(log, wanted, after))
        elif not self._closed:
            self._wait_for(response_id, reader)
        return reader

    def _wait_for(self, response_id: str, reader: Reader) -> None:
        waiting = self._waiting.get(response_id)
        if waiting is None:
            waiting = self._waiting[response_id] = _Waiting()
        waiting.readers.add(reader)
        waiting.alive += 1
        weakref.finalize(reader, self._gone, response_id, waiting)

    def _gone(self, response_id: str, waiting: _Waiting) -> None:
        """A waiting reader was dropped: forget the wait with the last one."""
        waiting.alive -= 1
        if waiting.alive == 0 and self._waiting.get(response_id) is waiting:
            del self._waiting[response_id]


def _starts_a_response(event: ev.Event) -> bool:
    # Events made before any wire event carry -1; a finished response's, 0.
    return isinstance(event, ev.ResponseStarted) or event.sequence_number <= 0


def _position(log: _Log, wanted: tuple[int, int] | None, after: str | None) -> int:
    """Where a reader that has seen everything up to ``wanted`` goes on in ``log``."""
    if wanted is None:
        return log.base
    if log.floor is not None and wanted < log.floor:
        raise TooOld(
            f"the events after {after} are no longer kept; start again from the beginning "
            "of what is kept (no cursor)"
        )
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
    catch up on does not count), when the history moved past it, or when its response
    was pushed out of the hub by newer ones; :class:`TooOld` when the response it waited
    for came, but only from after the cursor it asked to resume after.
    """

    def __init__(
        self, hub: Hub, response_id: str, wanted: tuple[int, int] | None, after: str | None
    ) -> None:
        self._hub = hub
        self.response_id = response_id
        self._wanted = wanted
        self._after = after
        self._log: _Log | None = None
        self._refused: TooOld | None = None
        self._position = 0
        self._done = False
        self._joined_at = 0

    def _attach(self, log: _Log, position: int) -> None:
        self._log = log
        self._position = position
        # Catching up on the history is not falling behind: only events that arrived
        # after the reader came count toward max_lag.
        self._joined_at = log.end

    def _arrived(self, log: _Log) -> None:
        """The response it waited for came (its first event is not in ``log`` yet)."""
        try:
            position = _position(log, self._wanted, self._after)
        except TooOld as exc:
            self._refused = exc
            return
        self._attach(log, position)

    def __aiter__(self) -> Reader:
        return self

    async def __anext__(self) -> ev.Event:
        hub = self._hub
        while not self._done and not hub._closed:
            if self._refused is not None:
                raise self._refused
            log = self._log
            if log is None:
                waiting = hub._waiting.get(self.response_id)
                if waiting is None:  # never registered: the hub was closed
                    break
                await waiting.arrived.wait()
                continue
            event = self._next(log)
            if event is not None:
                return event
            if log.ended:
                break
            if log.evicted:
                raise Lagged(
                    f"the hub let go of {self.response_id} for newer responses "
                    "(max_responses); reconnect with the last cursor"
                )
            await log.grown.wait()
        raise StopAsyncIteration

    def ready(self, limit: int = 256) -> list[ev.Event]:
        """Up to ``limit`` of the events there are now, without waiting: none before its
        response came, once the end went out, or when the reader is to be let go (the
        next ``__anext__`` says why). A server sends them in one write."""
        log = self._log
        position = self._position
        if log is None or self._done or self._refused is not None or self._hub._closed:
            return []
        if position < log.base or position >= log.end:
            return []
        if log.end - max(position, self._joined_at) > self._hub.max_lag:
            return []
        start = position - log.base
        events = log.events[start : start + limit]
        if log.ended:  # a pipeline that resumed the response may have sent more after it
            events = _up_to_the_end(events)
        self._position = position + len(events)
        self._done = isinstance(events[-1], ev.END_TYPES)  # nothing follows a response's end
        return events

    def on_publish(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(final)`` each time the hub gets an event of this response
        (``final``: none will follow), until the function returned is called; nothing
        is called before the response comes. A server ends a rest with it (see
        ``respflow.MemoryBroker``'s subscriptions). When none will follow already (the
        response ended, was pushed out, or the hub closed), ``callback(True)`` is called
        at once."""
        log = self._log
        if log is None:
            return _nothing
        return watch(log.watchers, callback, log.ended or log.evicted or self._hub._closed)

    def _next(self, log: _Log) -> ev.Event | None:
        position = self._position
        if position < log.base:
            raise Lagged(
                f"the reader of {self.response_id} fell behind the history; "
                "reconnect with its last cursor"
            )
        if position >= log.end:
            return None
        behind = log.end - max(position, self._joined_at)
        if behind > self._hub.max_lag:
            raise Lagged(
                f"the reader of {self.response_id} fell {behind} events behind "
                f"(max_lag {self._hub.max_lag}); reconnect with its last cursor"
            )
        event = log.at(position)
        self._position = position + 1
        self._done = isinstance(event, ev.END_TYPES)
        return event


def _nothing() -> None:
    pass


def _up_to_the_end(events: list[ev.Event]) -> list[ev.Event]:
    """``events`` up to and with the first end among them, as ``__anext__`` gives them."""
    for n, event in enumerate(events):
        if isinstance(event, ev.END_TYPES):
            return events[: n + 1]
    return events
