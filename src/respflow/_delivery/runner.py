"""Running responses in the background of a server: from ``create`` to a broker.

A web handler wants two things from a response it starts: its id, at once (to answer the
request with where to follow it), and its events, in a place any reader can follow them
from (the broker). :class:`Runner` gives both: ``await runner.start(**create)`` returns
as soon as the response id is known and its first event is in the broker, while the rest
of the response runs in the runner's task group through the processors (file fetcher,
link rewriter) into the broker. What is ready goes in one ``publish`` call: the events of
one chunk, or all that came while the broker answered the last call (never waiting for
more), so a burst costs a few round trips and not one per event. A failure before the
first event is raised by ``start`` itself, as the typed exception :func:`respflow.stream`
raises.

The runner holds a lease on each response it publishes and renews it while it runs; a
producer that loses its lease (it stalled, and another took the response over) stops
publishing at once. Leaving the runner, or cancelling a response, ends each response it
ran with an end event in the broker (``stream.truncated``, unless the response ended).

With ``takeover=True`` the runner also watches the broker for responses whose producer
died (its lease lapsed before the response ended). It claims each one (the lease lets
exactly one runner win) and:

- continues a background response: the API replays it from its first event, the
  runner's processors rebuild it, and only what the log does not hold yet is published
  (see :class:`_Continuation`), so readers see every event once, in order, with one end;
- ends a foreground response, which the API cannot replay, with ``stream.truncated``.

Such a runner leaves its background responses unended when it exits (a restart or a
deploy): another runner, or this one started again, continues them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from .. import _events as ev
from .._exceptions import LeaseLost, RespflowError, TooOld, UsageError, sole_exception
from .broker import Broker, Lease
from .leases import LEASE_TTL
from .pipeline import Pipeline, attach

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["Runner"]

_log = logging.getLogger("respflow.runner")


@dataclass(slots=True)
class _Running:
    response_id: str
    background: bool
    scope: anyio.CancelScope
    done: anyio.Event = field(default_factory=anyio.Event)
    handed_over: bool = False
    """Stopped, unended, for another runner to continue (this one exits)."""


_BATCH = 256
"""Events one ``publish`` call carries at most: a broker holds its store for the whole call
(one Lua script on Redis), and past a few hundred a larger batch gains little."""


class _BrokerSink:
    """Publishes a response's events into the broker under the runner's lease; once the
    lease is lost it publishes nothing more (the response has another producer).

    The pipeline hands it one event at a time; :meth:`publish_ready`, a task of its own,
    publishes whatever has come since its last call returned, in one call. A lone event
    goes out at once (nothing waits for more), and a burst (the events of one chunk, or
    all that came while Redis answered) costs one round trip, not one per event.
    """

    def __init__(
        self,
        broker: Broker,
        lease: Lease,
        running: _Running,
        continuation: _Continuation | None = None,
    ) -> None:
        self._broker = broker
        self.lease = lease
        self._running = running
        self.lost = False
        self.first = anyio.Event()
        self._continuation = continuation
        self._pending: list[ev.Event] = []
        self._publishing = False
        self._ready = anyio.Event()
        """Set when there is something to publish, or the sink is closing."""
        self._room = anyio.Event()
        self._closing = False
        self._started = False
        self._done = anyio.Event()
        self._failure: Exception | None = None

    async def send(self, event: ev.Event) -> None:
        if self._failure is not None:
            raise self._failure
        placed = event if self._continuation is None else self._continuation.place(event)
        if self._running.handed_over:
            # The response goes on with a successor: not the pipeline's notice that it
            # stopped, nor what its processors let go as it did (a LinkRewriter's held
            # start of a link, which the successor's rewriter lets out as the link).
            placed = None
        if placed is None or self.lost:
            if not (self._pending or self._publishing):
                self.first.set()
            return
        while len(self._pending) >= _BATCH and not self._done.is_set():
            self._room = anyio.Event()
            await self._room.wait()
        if self._failure is not None:
            raise self._failure
        self._pending.append(placed)
        self._ready.set()

    async def aclose(self) -> None:
        """Returns once everything sent is published; raises what stopped publishing."""
        self._closing = True
        self._ready.set()
        if self._started:
            await self._done.wait()
        self.first.set()
        if self._failure is not None:
            raise self._failure

    async def publish_ready(self) -> None:
        """Publishes what was sent, in order, until the sink is closed. A publish that
        fails (:class:`LeaseLost`: the response has another producer) stops it, and the
        next ``send`` raises that, as a send that published itself would have."""
        self._started = True
        try:
            while self._failure is None:
                while not self._pending:
                    if self._closing:
                        return
                    self._ready = anyio.Event()
                    await self._ready.wait()
                batch = self._pending[:_BATCH]
                del self._pending[:_BATCH]
                self._room.set()
                await self._publish(batch)
        finally:
            self._done.set()
            self._room.set()

    async def _publish(self, batch: list[ev.Event]) -> None:
        if self.lost:
            return
        self._publishing = True
        try:
            await self._broker.publish(batch, lease=self.lease)
        except Exception as exc:
            self.lost = self.lost or isinstance(exc, LeaseLost)
            self._failure = exc
            self._pending.clear()
            return
        finally:
            self._publishing = False
        self.first.set()


_MADE = (ev.FileSaved, ev.FileFailed, ev.MessageCompleted)
"""Events whose place in a stream depends on timing, not on the wire: a file's outcome
comes when its download ends, and the rewriter holds each message back until then."""


class _Continuation:
    """Where a response's replay, rebuilt by a new producer, joins the log the old one left.

    The replay's events up to the log's top are the same as the log's (the core and the
    rewriter are deterministic), except the few whose place depends on when a download
    finished (``_MADE``). So: events of sequence numbers below the top's are dropped; of
    the top's own, as many as the log holds are dropped and the rest go after it; a
    ``_MADE`` event the log already holds is dropped, and one it lacks, if it falls at or
    below the top, goes after it. Everything later keeps its cursor.
    """

    def __init__(
        self, top: str, at_top: int | None, announced: set[Any], forgotten: int | None = None
    ) -> None:
        self._top_seq, self._next_k = ev.parse_cursor(top)
        self._next_k += 1
        self._at_top = at_top
        """How many events of the top's sequence number the log holds; None if unknown
        (the log was trimmed): then all of them are taken as held."""
        self._announced = announced
        self._forgotten = forgotten
        """The log was trimmed: it no longer holds the events up to this sequence number,
        so a ``_MADE`` event that falls there is taken as held (the old producer had
        reported it, or it would repeat one the log dropped)."""

    @classmethod
    async def read(cls, broker: Broker, response_id: str, top: str) -> _Continuation:
        """The continuation of the log of ``response_id``, which ends at ``top``."""
        seq = ev.parse_cursor(top)[0]
        forgotten = None
        try:
            held = await _read_until(broker, response_id, None, top)
        except TooOld:  # only the newest events are kept: read what is left of them
            forgotten = await _forgotten_until(broker, response_id, seq)
            if forgotten >= seq:
                return cls(top, None, set(), forgotten)
            held = await _read_until(broker, response_id, f"{forgotten}-{_ANY_K}", top)
        at_top = sum(1 for e in held if e.sequence_number == seq and not isinstance(e, _MADE))
        announced = {_made_key(e) for e in held if isinstance(e, _MADE)}
        return cls(top, at_top, announced, forgotten)

    def place(self, event: ev.Event) -> ev.Event | None:
        """``event`` with the cursor it takes in the log, or None if the log holds it."""
        seq = event.sequence_number
        if isinstance(event, _MADE):
            key = _made_key(event)
            if key in self._announced or (self._forgotten is not None and seq <= self._forgotten):
                return None
            self._announced.add(key)
            return self._after_top(event) if seq <= self._top_seq else event
        if seq > self._top_seq:
            return event
        if seq < self._top_seq:
            return None
        if self._at_top is None:
            return None
        if self._at_top > 0:
            self._at_top -= 1
            return None
        return self._after_top(event)

    def _after_top(self, event: ev.Event) -> ev.Event:
        cursor = f"{self._top_seq}-{self._next_k}"
        self._next_k += 1
        return msgspec.structs.replace(event, sequence_number=self._top_seq, cursor=cursor)


def _made_key(event: ev.FileSaved | ev.FileFailed | ev.MessageCompleted) -> Any:
    """What tells one such event from another, whichever producer made it."""
    if isinstance(event, ev.MessageCompleted):
        return ("message", event.item_id)
    if event.file_id or event.path:
        return (event.container_id, event.file_id, event.path)
    return msgspec.structs.replace(event, sequence_number=0, cursor="")


_ANY_K = 2**62
"""A ``k`` above any real one: the cursor ``f"{seq}-{_ANY_K}"`` is after all of ``seq``'s."""


async def _forgotten_until(broker: Broker, response_id: str, top_seq: int) -> int:
    """The sequence number up to which a trimmed log may lack events: it holds every event
    after it. Found by bisection, since a reader after a trimmed cursor gets ``TooOld``
    (a few reads for the longest logs)."""
    lost, kept = -2, top_seq
    while kept - lost > 1:
        middle = (lost + kept) // 2
        try:
            probe = await broker.subscribe(response_id, after=f"{middle}-{_ANY_K}")
        except TooOld:
            lost = middle
        else:
            await probe.aclose()
            kept = middle
    return kept


async def _read_until(
    broker: Broker, response_id: str, after: str | None, top: str
) -> list[ev.Event]:
    subscription = await broker.subscribe(response_id, after=after)
    held: list[ev.Event] = []
    end = ev.parse_cursor(top)
    try:
        with anyio.fail_after(30):
            async for event in subscription:
                held.append(event)
                if ev.parse_cursor(event.cursor) >= end:
                    break
    finally:
        await subscription.aclose()
    return held


class Runner:
    """Starts responses and runs each one, through ``processors``, into ``broker``.

    ``async with Runner(client, broker) as runner:`` then ``rid = await runner.start(...)``.

    Args:
        client: the ``openai.AsyncOpenAI`` (or Azure) client responses are created with.
        broker: where each response's events go (:class:`respflow.MemoryBroker`, ...).
        processors: called once per response for its processors, in order, e.g.
            ``lambda: [FileFetcher(client, storage), LinkRewriter(url)]``.
        owner: this runner's name on leases (default: random, unique per runner).
        lease_ttl: seconds a lease lasts unless renewed; renewed every third of it. A
            dead producer's responses are taken over this long after its last renewal.
        stream: the function that opens a response's stream (default
            :func:`respflow.stream`); keyword arguments of ``start`` go to it.
        takeover: watch the broker for responses whose producer died and take them
            over (see the module's docstring). For brokers that processes share.
        resume: the function that replays a background response for a takeover
            (default :func:`respflow.resume`), called as ``resume(client, response_id,
            include=["code_interpreter_call.outputs"])``; e.g. ``functools.partial(
            respflow.resume, record=recorder)`` records the replays too.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        broker: Broker,
        *,
        processors: Callable[[], Sequence[Any]] = list,
        owner: str | None = None,
        lease_ttl: float = LEASE_TTL,
        stream: Callable[..., Any] | None = None,
        takeover: bool = False,
        resume: Callable[..., Any] | None = None,
    ) -> None:
        if not lease_ttl > 0 or not math.isfinite(lease_ttl):
            raise UsageError("lease_ttl must be a positive number of seconds")
        self.client = client
        self.broker = broker
        self.processors = processors
        self.owner = owner or f"runner-{secrets.token_hex(6)}"
        self.lease_ttl = lease_ttl
        self._stream = stream
        self.takeover = takeover
        self._resume = resume
        self._group: TaskGroup | None = None
        self._running: dict[str, _Running] = {}
        self._closing = False
        self._watching = anyio.CancelScope()

    async def __aenter__(self) -> Runner:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        if self.takeover:
            self._group.start_soon(self._watch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._closing = True
        self._watching.cancel()
        for running in self._running.values():
            running.handed_over = self.takeover and running.background
            running.scope.cancel()
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._group = None

    def running(self) -> list[str]:
        """The ids of the responses this runner is running now."""
        return list(self._running)

    async def start(self, *, processors: Sequence[Any] | None = None, **create: Any) -> str:
        """Create a response and run it; returns its id once its first event is published.

        ``create`` takes the arguments of ``client.responses.create``; ``processors``
        replaces the runner's own for this response.

        Raises what :func:`respflow.stream` raises before a stream's first event
        (:class:`respflow.AuthenticationFailed`, :class:`respflow.RateLimited`, ...).
        """
        if self._group is None:
            raise UsageError("start responses inside `async with Runner(...) as runner:`")
        chosen = list(processors) if processors is not None else list(self.processors())
        response_id: str = await self._group.start(self._run, create, chosen)
        return response_id

    async def cancel(self, response_id: str, *, grace: float = 5.0) -> bool:
        """Cancel a response this runner runs; False if it runs no such response.

        A background response is cancelled upstream too, and given ``grace`` seconds to
        end with the API's own end event; otherwise (and for a foreground response) the
        runner stops following it, and its log ends with ``stream.truncated``.
        """
        running = self._running.get(response_id)
        if running is None:
            return False
        if running.background:
            from .._sources.openai import cancel

            try:
                await cancel(self.client, response_id)
            except RespflowError as exc:
                _log.warning("respflow: cancelling %s upstream failed: %s", response_id, exc)
            with anyio.move_on_after(grace):
                await running.done.wait()
        running.scope.cancel()
        await running.done.wait()
        return True

    async def wait(self, response_id: str) -> None:
        """Until the response has ended in the broker (at once if this runner is not
        running it)."""
        running = self._running.get(response_id)
        if running is not None:
            await running.done.wait()

    # -- one response -------------------------------------------------------------------

    async def _run(
        self, create: dict[str, Any], processors: list[Any], *, task_status: TaskStatus[str]
    ) -> None:
        events = self._open(create)
        try:
            first = await events.__anext__()  # typed errors before the first event raise here
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await events.aclose()
            if isinstance(exc, StopAsyncIteration):
                raise RespflowError("the response's stream ended before its first event") from None
            raise
        response_id = first.response_id
        lease = await self.broker.claim(response_id, self.owner, self.lease_ttl)
        if lease is None:
            await events.aclose()
            raise RespflowError(f"response {response_id} is already owned by another producer")
        running = self._register(response_id, bool(create.get("background")))
        sink = _BrokerSink(self.broker, lease, running)
        await self._drive(running, sink, first, events, processors, task_status)

    def _register(self, response_id: str, background: bool) -> _Running:
        running = _Running(response_id, background, anyio.CancelScope())
        self._running[response_id] = running
        if self._closing:
            running.handed_over = self.takeover and background
            running.scope.cancel()
        return running

    async def _drive(
        self,
        running: _Running,
        sink: _BrokerSink,
        first: ev.Event,
        events: Any,
        processors: list[Any],
        task_status: TaskStatus[str] | None = None,
    ) -> None:
        """Runs one response's events through ``processors`` into ``sink`` while its
        lease is renewed; however it stops, the log gets an end (see :meth:`_stop`)."""
        response_id = running.response_id
        announced = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, sink, tg.cancel_scope)
                # Outside delivery's scope: cancelling a response still publishes its end.
                tg.start_soon(sink.publish_ready)
                tg.start_soon(
                    self._deliver, sink, running.scope, first, events, processors, tg.cancel_scope
                )
                await sink.first.wait()
                if task_status is not None:
                    task_status.started(response_id)
                announced = True
        except Exception as exc:
            if not announced and task_status is not None:
                sole = sole_exception(exc) if isinstance(exc, BaseExceptionGroup) else exc
                raise (sole or exc) from None
            # One response's failure must not take the runner's other responses with it.
            _log.exception("respflow: running response %s failed", response_id)
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(running, sink)

    async def _stop(self, running: _Running, sink: _BrokerSink, why: str | None = None) -> None:
        """Ends the response's log if it has no end, and gives its lease up.

        A background response this runner leaves because it exits is not ended when
        others take responses over: one of them continues it. Stopping a response that
        was stopped already does nothing (a takeover may stop it while opening).
        """
        if running.done.is_set():
            return
        try:
            if why is not None or not running.handed_over:
                await self._end_if_open(
                    sink,
                    running.response_id,
                    why or "the server stopped following this response before it ended",
                )
            await self.broker.release(sink.lease)
        finally:
            del self._running[running.response_id]
            running.done.set()

    async def _deliver(
        self,
        sink: _BrokerSink,
        scope: anyio.CancelScope,
        first: ev.Event,
        events: Any,
        processors: list[Any],
        renewal: anyio.CancelScope,
    ) -> None:
        with scope:
            pipeline = Pipeline(attach(sink, required=True), processors=processors)
            async with events, pipeline:
                await pipeline.run(_prepend(first, events))
        renewal.cancel()

    async def _end_if_open(self, sink: _BrokerSink, response_id: str, why: str) -> None:
        """However the run stopped, a response whose log has no end gets one, so no
        reader waits forever (unless the lease is lost: the new owner ends it)."""
        if sink.lost:
            return
        with anyio.move_on_after(5):
            status = await self.broker.status(response_id)
            if status is None or status.ended or status.last_cursor is None:
                return
            seq, k = ev.parse_cursor(status.last_cursor)
            end = ev.StreamTruncated(
                response_id=response_id,
                sequence_number=seq,
                cursor=f"{seq}-{k + 1}",
                last_sequence_number=seq,
                message=why,
            )
            with contextlib.suppress(LeaseLost):
                await self.broker.publish([end], lease=sink.lease)

    def _open(self, create: dict[str, Any]) -> Any:
        if self._stream is not None:
            return self._stream(self.client, **create)
        from .._sources.openai import stream

        return stream(self.client, **create)

    async def _renew(self, sink: _BrokerSink, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self.lease_ttl / 3)
            try:
                sink.lease = await self.broker.renew(sink.lease, self.lease_ttl)
            except LeaseLost:
                _log.warning("respflow: lease of %s lost; stopping", sink.lease.response_id)
                sink.lost = True
                scope.cancel()
                return

    # -- taking over what a dead producer left ------------------------------------------

    async def _watch(self) -> None:
        with self._watching:
            while True:
                await anyio.sleep(self.lease_ttl / 3)
                try:
                    await self._claim_orphans()
                except Exception:  # the broker is unreachable for now: look again later
                    _log.warning("respflow: looking for orphaned responses failed", exc_info=True)

    async def _claim_orphans(self) -> None:
        """Claims each unfinished response no producer holds, and starts its takeover."""
        assert self._group is not None
        for response_id, background in (await self._orphans()).items():
            if response_id in self._running or self._closing:
                continue
            lease = await self.broker.claim(response_id, self.owner, self.lease_ttl)
            if lease is None:
                continue
            if response_id in self._running:  # started here while the claim was made
                continue
            running = self._register(response_id, background)
            self._group.start_soon(self._take_over, running, lease)

    async def _orphans(self) -> dict[str, bool]:
        """The unfinished responses whose lease no one holds: from the broker in one look
        if it can (``orphans``), else by asking each unfinished one's status.

        Held means its producer lives. The claim alone would not say so when that producer
        is another runner of this one's name (a claim by the same owner takes the lease
        again), and would take a live response from it.
        """
        orphans = getattr(self.broker, "orphans", None)
        if orphans is not None:
            found: dict[str, bool] = await orphans()
            return found
        found = {}
        for response_id, background in (await self.broker.unfinished()).items():
            if response_id in self._running:
                continue
            status = await self.broker.status(response_id)
            if status is not None and status.owner is None:
                found[response_id] = background
        return found

    async def _take_over(self, running: _Running, lease: Lease) -> None:
        sink = _BrokerSink(self.broker, lease, running)
        opening = running.scope  # leaving the runner (or cancel) stops the opening too
        reopened = None
        try:
            with opening:
                reopened = await self._reopen(running, sink)
        except Exception as exc:
            _log.warning("respflow: taking over %s failed: %s", running.response_id, exc)
            why = f"the producer of this response stopped, and continuing it failed: {exc}"
            with anyio.CancelScope(shield=True):
                await self._stop(running, sink, why)
            return
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stop(running, sink)
            raise
        if opening.cancel_called:
            with anyio.CancelScope(shield=True):
                if reopened is not None:
                    await reopened[2].aclose()
                await self._stop(running, sink)
            return
        if reopened is not None:
            continuation, first, events = reopened
            running.scope = anyio.CancelScope()  # a scope is entered once: delivery's own
            sink = _BrokerSink(self.broker, lease, running, continuation)
            await self._drive(running, sink, first, events, list(self.processors()))

    async def _reopen(
        self, running: _Running, sink: _BrokerSink
    ) -> tuple[_Continuation, ev.Event, Any] | None:
        """The replay a takeover continues, and where it joins the log; None once the
        response needs nothing more (it ended meanwhile, or it cannot be replayed)."""
        response_id = running.response_id
        status = await self.broker.status(response_id)
        if status is None or status.ended or status.last_cursor is None:
            with anyio.CancelScope(shield=True):
                await self._stop(running, sink)
            return None
        if not running.background:
            why = (
                "the producer of this response stopped before it ended, and a response not "
                "started with background=True cannot be replayed to another producer"
            )
            with anyio.CancelScope(shield=True):
                await self._stop(running, sink, why)
            return None
        _log.info("respflow: taking over response %s from %s", response_id, status.owner)
        continuation = await _Continuation.read(self.broker, response_id, status.last_cursor)
        events = self._open_replay(response_id)
        try:
            first = await events.__anext__()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await events.aclose()
            if isinstance(exc, StopAsyncIteration):
                raise RespflowError("the API's replay of it ended before its first event") from None
            raise
        return continuation, first, events

    def _open_replay(self, response_id: str) -> Any:
        from .._sources.openai import CODE_OUTPUTS, resume

        # From the first event, not after the log's last: the rewriter may hold text
        # back across events, and items need their beginnings to be finished. The
        # request's own include is not known here; the code's outputs are what respflow
        # exists to keep.
        return (self._resume or resume)(self.client, response_id, include=[CODE_OUTPUTS])


async def _prepend(first: ev.Event, rest: AsyncIterator[ev.Event]) -> AsyncIterator[ev.Event]:
    yield first
    async for event in rest:
        yield event
