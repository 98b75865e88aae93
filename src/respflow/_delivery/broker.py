"""A response's event log that any process can publish to and any reader follow.

The process that reads a response from OpenAI is often not the one holding a browser's
connection, browsers reconnect, and workers die. A :class:`Broker` carries each
response's normalized events between them as an ordered log keyed by cursor:

- ``publish`` appends a batch, idempotently: an event at or below the log's last cursor
  is dropped, so a producer that replays after a restart duplicates nothing;
- ``subscribe`` reads from the event after a cursor to the response's end, waiting for
  new ones; a cursor the log no longer holds raises :class:`TooOld`, never a silent skip;
- leases (``claim``, ``renew``, ``release``) say which producer owns a response, and a
  publish under a lease that is no longer held is refused (:class:`LeaseLost`), so a
  stalled producer cannot write over its successor;
- ``unfinished`` lists the responses whose log has no end yet, so a producer that died
  is noticed by the others (:class:`respflow.Runner` takes its responses over); a broker
  may also have ``orphans``, those of them no producer holds, found in one look.

:class:`MemoryBroker` keeps the logs in this process; ``respflow-redis`` keeps them in
Redis Streams for many processes. Both pass ``respflow.testing.BrokerConformance``.
"""

from __future__ import annotations

import itertools
import logging
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio

from .. import _events as ev
from .._events import parse_cursor
from .._exceptions import LeaseLost, ResponseNotFound, TooOld, UsageError

__all__ = ["Broker", "Lease", "LogStatus", "MemoryBroker", "Subscription"]

Cursor = tuple[int, int]

_log = logging.getLogger("respflow")


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to publish one response's events, until ``expires_at`` (broker clock).

    ``token`` grows with every claim of the response, so a lease that lapsed and was
    claimed again is told apart from its successor even with the same ``owner``.
    """

    response_id: str
    owner: str
    token: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class LogStatus:
    """What a broker knows of one response."""

    response_id: str
    last_cursor: str | None
    """The newest cursor published (``None`` before the first event)."""
    ended: bool
    """Its end event has been published."""
    owner: str | None
    """The owner of a lease that is still held, if any."""


class Subscription(Protocol):
    """One reader's way through one response's log; an async iterator of events."""

    response_id: str

    def __aiter__(self) -> AsyncIterator[ev.Event]: ...

    async def __anext__(self) -> ev.Event: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Broker(Protocol):
    """Per-response event logs shared by producers and readers."""

    async def publish(self, events: Sequence[ev.Event], *, lease: Lease | None = None) -> int:
        """Append ``events`` (in cursor order, any mix of responses) to their logs.

        Events at or below a log's last cursor, and any after its end event, are
        dropped. Returns how many were appended.

        Raises:
            LeaseLost: ``lease`` is given and is no longer the response's current lease.
        """
        ...

    async def subscribe(self, response_id: str, *, after: str | None = None) -> Subscription:
        """A reader from the event after cursor ``after`` (from the first event if
        ``None``) to the response's end, waiting for new events.

        Raises:
            ResponseNotFound: the broker has no log of this response (unknown or expired).
            TooOld: the log no longer holds the events right after ``after``.
        """
        ...

    async def status(self, response_id: str) -> LogStatus | None:
        """What the broker holds of a response, or ``None`` if nothing."""
        ...

    async def claim(self, response_id: str, owner: str, ttl: float) -> Lease | None:
        """Take the response's lease for ``ttl`` seconds, unless another owner holds it."""
        ...

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease still held. Raises :class:`LeaseLost` if it is not."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give a lease up (nothing happens if it is no longer held)."""
        ...

    async def unfinished(self) -> dict[str, bool]:
        """The responses whose log has events but no end yet (in no set order), each with
        whether it is a background response (its ``response.started`` said so: the API
        can replay it to another producer)."""
        ...

    async def aclose(self) -> None:
        """Let go of the broker's resources; readers end."""
        ...


@dataclass(slots=True)
class _Log:
    response_id: str
    events: list[ev.Event] = field(default_factory=list)
    cursors: list[Cursor] = field(default_factory=list)
    """``events``' cursors, parsed once, for binary search."""
    base: int = 0
    """The absolute position of ``events[0]``."""
    trimmed_top: Cursor | None = None
    """The cursor of the newest event trimmed away."""
    last: Cursor | None = None
    ended_at: float | None = None
    gone: str | None = None
    """Why the log was dropped (expired, evicted), for readers still on it."""
    lease: Lease | None = None
    background: bool = False
    grown: anyio.Event | None = None
    """Set at the next publish; made only when a reader waits for one (while readers
    rest, a publish wakes no one and makes no event)."""
    watchers: list[Callable[[bool], None]] = field(default_factory=list)
    """Called at each publish (see ``on_publish``)."""

    @property
    def end(self) -> int:
        return self.base + len(self.events)

    def waited(self) -> anyio.Event:
        if self.grown is None:
            self.grown = anyio.Event()
        return self.grown

    def wake(self, final: bool) -> None:
        if self.grown is not None:
            self.grown.set()
            self.grown = None
        if self.watchers:
            notify(self.watchers, final)


def watch(
    watchers: list[Callable[[bool], None]], callback: Callable[[bool], None], over: bool
) -> Callable[[], None]:
    """Add ``callback`` to ``watchers`` until the function returned is called (again, a
    no-op); when the response is ``over``, call ``callback(True)`` now instead: no
    publish will come to say so, and a rest waiting for one would wait for its fallback."""
    if over:
        callback(True)
        return _nothing
    watchers.append(callback)
    watching = True

    def stop() -> None:
        nonlocal watching
        if watching:  # a tick adds equal callbacks: remove this one, and only once
            watching = False
            for n, watcher in enumerate(watchers):
                if watcher is callback:
                    del watchers[n]
                    break

    return stop


def notify(watchers: list[Callable[[bool], None]], final: bool) -> None:
    """Call each watcher in the publisher's task. One that raises is a reader's bug, not
    the producer's: it is logged and dropped, and the publish and the others go on."""
    for watcher in tuple(watchers):
        try:
            watcher(final)
        except Exception:
            _log.exception("a callback given to on_publish raised; it is called no more")
            for n, held in enumerate(watchers):
                if held is watcher:
                    del watchers[n]
                    break


def _nothing() -> None:
    pass


class MemoryBroker:
    """A :class:`Broker` in this process's memory: for one worker, and for tests.

    Args:
        max_events: events kept per response; older ones are trimmed (a reader that
            needs them gets :class:`TooOld`).
        max_responses: logs kept; past it the oldest finished one is dropped first,
            else the oldest of all (its readers get :class:`ResponseNotFound`).
        keep_after_end: seconds a finished response stays readable.
        clock: seconds, monotonic; for tests that move time.
    """

    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_responses: int = 1_000,
        keep_after_end: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_events < 1 or max_responses < 1 or keep_after_end < 0:
            raise UsageError(
                "max_events and max_responses must be at least 1, keep_after_end at least 0"
            )
        self.max_events = max_events
        self.max_responses = max_responses
        self.keep_after_end = keep_after_end
        self._clock = clock
        self._logs: dict[str, _Log] = {}  # oldest first
        self._ended: dict[str, _Log] = {}  # in the order they ended: expiry looks at the front
        self._tokens = itertools.count(1)
        self._closed = False

    # -- producers ----------------------------------------------------------------------

    async def publish(self, events: Sequence[ev.Event], *, lease: Lease | None = None) -> int:
        self._check_open()
        self._expire()
        if lease is not None:
            self._check_lease(lease, {e.response_id for e in events})
        # Every cursor is read before anything is appended: a bad one further on must not
        # leave events in the log that no reader was woken for.
        cursors = [parse_cursor(event.cursor) for event in events]
        appended = 0
        touched: dict[str, _Log] = {}
        for event, cursor in zip(events, cursors, strict=True):
            log = self._logs.get(event.response_id) or self._create(event.response_id)
            if log.ended_at is not None or (log.last is not None and cursor <= log.last):
                continue
            if isinstance(event, ev.ResponseStarted) and event.background:
                log.background = True
            log.events.append(event)
            log.cursors.append(cursor)
            log.last = cursor
            appended += 1
            if isinstance(event, ev.END_TYPES):
                log.ended_at = self._clock()
                self._ended[log.response_id] = log
            touched[log.response_id] = log
        for log in touched.values():
            self._trim(log)
            log.wake(log.ended_at is not None)
        await anyio.lowlevel.checkpoint()
        return appended

    def _create(self, response_id: str) -> _Log:
        while len(self._logs) >= self.max_responses:
            oldest = next(iter(self._ended.values()), None) or next(iter(self._logs.values()))
            self._drop(oldest, "evicted")
        log = self._logs[response_id] = _Log(response_id)
        return log

    def _trim(self, log: _Log) -> None:
        if len(log.events) > 2 * self.max_events:  # trim in steps: appends stay O(1)
            cut = len(log.events) - self.max_events
            log.trimmed_top = log.cursors[cut - 1]
            del log.events[:cut], log.cursors[:cut]
            log.base += cut

    def _drop(self, log: _Log, why: str) -> None:
        del self._logs[log.response_id]
        self._ended.pop(log.response_id, None)
        log.gone = why
        log.wake(True)

    def _expire(self) -> None:
        now = self._clock()
        for log in list(self._ended.values()):
            if log.ended_at is None or now - log.ended_at < self.keep_after_end:
                break
            self._drop(log, "expired")

    # -- leases -------------------------------------------------------------------------

    def _check_lease(self, lease: Lease, response_ids: set[str]) -> None:
        for response_id in response_ids:
            log = self._logs.get(response_id)
            held = log.lease if log is not None else None
            if (
                response_id != lease.response_id
                or held is None
                or held.token != lease.token
                or held.expires_at <= self._clock()
            ):
                raise LeaseLost(
                    f"the lease of {lease.owner} on {lease.response_id} is no longer held; "
                    "another producer may own the response now: stop publishing it"
                )

    async def claim(self, response_id: str, owner: str, ttl: float) -> Lease | None:
        self._check_open()
        self._expire()
        log = self._logs.get(response_id) or self._create(response_id)
        now = self._clock()
        held = log.lease
        if held is not None and held.expires_at > now and held.owner != owner:
            return None
        log.lease = Lease(response_id, owner, next(self._tokens), now + ttl)
        await anyio.lowlevel.checkpoint()
        return log.lease

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        self._check_open()
        self._check_lease(lease, {lease.response_id})
        log = self._logs[lease.response_id]
        log.lease = Lease(lease.response_id, lease.owner, lease.token, self._clock() + ttl)
        await anyio.lowlevel.checkpoint()
        return log.lease

    async def release(self, lease: Lease) -> None:
        log = self._logs.get(lease.response_id)
        if log is not None and log.lease is not None and log.lease.token == lease.token:
            log.lease = None
        await anyio.lowlevel.checkpoint()

    # -- readers ------------------------------------------------------------------------

    async def subscribe(self, response_id: str, *, after: str | None = None) -> Subscription:
        self._check_open()
        self._expire()
        log = self._logs.get(response_id)
        if log is None or log.last is None:
            raise ResponseNotFound(
                f"no events of response {response_id} are kept here: it is unknown, or it "
                "finished longer ago than the broker keeps responses"
            )
        wanted = parse_cursor(after) if after is not None else None
        if log.trimmed_top is not None and (wanted is None or wanted < log.trimmed_top):
            raise TooOld(
                f"the events of {response_id} after {after or 'its start'} are no longer "
                f"kept (only the last {self.max_events}); fetch the finished response instead"
            )
        position = log.base if wanted is None else log.base + bisect_right(log.cursors, wanted)
        await anyio.lowlevel.checkpoint()
        return _MemorySubscription(self, log, position)

    async def status(self, response_id: str) -> LogStatus | None:
        self._expire()
        log = self._logs.get(response_id)
        await anyio.lowlevel.checkpoint()
        if log is None:
            return None
        lease = log.lease
        return LogStatus(
            response_id=response_id,
            last_cursor=None if log.last is None else f"{log.last[0]}-{log.last[1]}",
            ended=log.ended_at is not None,
            owner=lease.owner if lease is not None and lease.expires_at > self._clock() else None,
        )

    async def unfinished(self) -> dict[str, bool]:
        self._check_open()
        self._expire()
        await anyio.lowlevel.checkpoint()
        return {
            rid: log.background
            for rid, log in self._logs.items()
            if log.last is not None and log.ended_at is None
        }

    async def orphans(self) -> dict[str, bool]:
        """The unfinished responses whose lease no producer holds (see :meth:`unfinished`):
        what a :class:`respflow.Runner` with ``takeover=True`` claims. Optional for a
        broker: a runner asks ``status`` of each unfinished response if it has none."""
        unfinished = await self.unfinished()
        now = self._clock()
        return {
            rid: background
            for rid, background in unfinished.items()
            if (lease := self._logs[rid].lease) is None or lease.expires_at <= now
        }

    def responses(self) -> list[str]:
        """The responses whose logs are kept, oldest first."""
        return list(self._logs)

    async def aclose(self) -> None:
        self._closed = True
        for log in self._logs.values():
            log.wake(True)

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this broker was closed")


class _MemorySubscription:
    """A position in one log; a cancelled wait keeps its place, so it can be resumed."""

    def __init__(self, broker: MemoryBroker, log: _Log, position: int) -> None:
        self._broker = broker
        self._log = log
        self._position = position
        self._done = False
        self.response_id = log.response_id

    def __aiter__(self) -> _MemorySubscription:
        return self

    async def __anext__(self) -> ev.Event:
        log = self._log
        while not self._done:
            if log.gone is not None:
                raise ResponseNotFound(
                    f"response {log.response_id} was {log.gone} from the broker while it was "
                    "being read (raise max_responses or keep_after_end)"
                )
            if self._position < log.base:
                raise TooOld(
                    f"the reader of {log.response_id} fell behind the kept history; "
                    "resume from its last cursor"
                )
            if self._position < log.end:
                event = log.events[self._position - log.base]
                self._position += 1
                self._done = isinstance(event, ev.END_TYPES)
                return event
            if log.ended_at is not None or self._broker._closed:
                break
            await log.waited().wait()
        raise StopAsyncIteration

    def ready(self, limit: int = 256) -> list[ev.Event]:
        """Up to ``limit`` of the events there are now, without waiting: none once the end
        went out, and none when something is wrong (the next ``__anext__`` says what).

        A server sends them in one write: a reader woken late, or one catching up,
        costs one write and not one per event."""
        log = self._log
        start = self._position - log.base
        if self._done or log.gone is not None or start < 0 or self._position >= log.end:
            return []
        events = log.events[start : start + limit]
        self._position += len(events)
        self._done = isinstance(events[-1], ev.END_TYPES)  # a log ends with its end event
        return events

    def on_publish(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(final)`` in the publisher's task each time events of this
        response are published (``final``: none will follow, the log ended or went),
        until the function returned is called. A server ends a rest with it: a publish
        wakes the producer anyway, so a rest that ends there costs no wake-up of its own.
        When none will follow already, ``callback(True)`` is called at once."""
        log = self._log
        over = log.ended_at is not None or log.gone is not None or self._broker._closed
        return watch(log.watchers, callback, over)

    async def aclose(self) -> None:
        self._done = True
