"""Fan-out: one stream of events to many sinks, none of which can hurt the others.

Each sink gets its own bounded buffer and its own task. What happens when a sink falls
behind is its policy: ``block`` holds the stream back until it catches up (nothing lost:
files, logs); ``drop_oldest`` drops what it has not taken yet and tells it so with a
``stream.dropped`` event; ``disconnect`` drops the sink (a slow browser tab reconnects
with its cursor). A sink that raises is closed and reported to the others as a
``stream.error``; a ``required`` sink failing stops the pipeline instead. Every sink is
closed exactly once, after the response's end, or on cancellation after a
``stream.truncated`` that says so, whatever it does: a sink that hangs on that notice is
closed all the same, and one the stream never waited for does not hold up the end.
Before that notice, each sink still fed gets what the processors held back (their
``close()``), even when the pipeline was cancelled: it was received, and exists nowhere
else.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from .. import _events as ev
from .._core.stamp import Stamper
from .._exceptions import RespflowError, UsageError, sole_exception
from .redaction import redact_text, redacting_logger

__all__ = ["Attached", "Pipeline", "Policy", "Sink", "SinkFailed", "attach", "deliver"]

Policy = Literal["block", "drop_oldest", "disconnect"]
"""What a sink that falls behind gets: ``block`` (the stream waits for it),
``drop_oldest`` (it skips ahead and gets ``stream.dropped``) or ``disconnect`` (closed)."""

# Sink errors carry URLs and headers: everything logged here is redacted first.
_log = redacting_logger("respflow")


@runtime_checkable
class Sink(Protocol):
    """Where events go. ``send`` is awaited once per event, in order; ``aclose`` once."""

    async def send(self, event: ev.Event) -> None: ...

    async def aclose(self) -> None: ...


class SinkFailed(RespflowError):
    """A ``required`` sink raised; the pipeline stopped. ``__cause__`` is its exception."""


@dataclass(frozen=True, slots=True)
class Attached:
    """A sink with its delivery options; see :func:`attach`."""

    sink: Sink
    policy: Policy = "block"
    buffer: int = 1024
    required: bool = False
    name: str = ""


def attach(
    sink: Sink,
    *,
    policy: Policy = "block",
    buffer: int = 1024,
    required: bool = False,
    name: str | None = None,
) -> Attached:
    """``sink`` with how it is fed: its policy when ``buffer`` events are waiting for it,
    and whether its failure stops the pipeline (``required``)."""
    if policy not in ("block", "drop_oldest", "disconnect"):
        raise UsageError(f"unknown policy {policy!r}: use block, drop_oldest or disconnect")
    if buffer < 1:
        raise UsageError("buffer must be at least 1")
    return Attached(sink, policy, buffer, required, name or type(sink).__name__)


class Pipeline:
    """``async with Pipeline(sink, attach(other, policy="drop_oldest")) as p: await p.run(events)``

    Args:
        sinks: sinks, bare (``block``, not required) or wrapped by :func:`attach`.
        processors: steps between the events and the sinks, in order: an object with
            ``process(events)`` (an async context manager, like :class:`respflow.FileFetcher`)
            or with ``feed(event) -> list[Event]`` (like :class:`respflow.LinkRewriter`).
            A feed processor may also have ``close() -> list[Event]``, the events for what
            it still holds: called once as the pipeline ends, however it ends (cancelled,
            its events run out before the response's end), and what it gives goes through
            the feed processors after it, then to the sinks before their
            ``stream.truncated``, numbered after the last event out. If one raises, what
            the others let go is still delivered, and its exception comes out of the
            pipeline once the sinks are closed, as a ``feed``'s would.
        close_timeout: seconds a sink that never holds the stream back (``drop_oldest``,
            ``disconnect``) may go without taking an event once the stream has ended
            before it is let go; and, at the end, the seconds a sink gets to take the
            ``stream.truncated`` that says it was cut short, then again to close.
    """

    def __init__(
        self,
        *sinks: Sink | Attached,
        processors: Sequence[Any] = (),
        close_timeout: float = 5.0,
    ) -> None:
        if not sinks:
            raise UsageError("a pipeline needs at least one sink")
        self.processors = list(processors)
        self._close_timeout = close_timeout
        self._outlets = [_Outlet(s if isinstance(s, Attached) else attach(s), self) for s in sinks]
        self._stamper = Stamper()
        self._held: list[ev.Event] | None = None
        self._close_failed: Exception | None = None
        self._in_flight: ev.Event | None = None
        """The event being given to the sinks (None between events): if a sink holding
        the stream back is cancelled, the sinks that had not taken it still get it."""
        self._group: TaskGroup | None = None
        self._open = False
        """Inside ``async with``: the sinks' tasks run, so publishing reaches them."""
        self._failed: SinkFailed | None = None
        self._reports: list[tuple[_Outlet, ev.StreamError]] = []
        self.failures: list[tuple[str, BaseException]] = []
        """Sinks that raised, by name, with what they raised."""

    async def __aenter__(self) -> Pipeline:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        for outlet in self._outlets:
            self._group.start_soon(outlet.run, name=f"respflow sink {outlet.name}")
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._open = False
        held = self._let_go()
        for outlet in self._outlets:
            outlet.let_out(held)
        self._send_reports()
        for outlet in self._outlets:
            outlet.end()
        try:
            handled = await self._group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            failed, rest = group.split(SinkFailed)
            if failed is not None and rest is None:
                raise failed.exceptions[0] from None
            # The sinks' tasks never raise: a lone error is the stream's own (a wrong key,
            # an unreachable API), and `except AuthenticationFailed` must catch it.
            sole = sole_exception(group)
            if sole is not None:
                raise sole from sole.__cause__
            raise
        if self._failed is not None:  # it cancelled the pipeline: this is what happened
            raise self._failed
        if self._close_failed is not None and exc_type is None:
            raise self._close_failed  # as a feed's exception would: a processor's bug
        return handled

    async def publish(self, event: ev.Event) -> None:
        """Give ``event`` to every sink, as each one's policy says."""
        self._check_open()
        if self._failed is not None:
            raise self._failed
        if self._reports:
            self._send_reports()
        stamped = self._in_flight = self._stamper.passed(event)
        for outlet in self._outlets:
            await outlet.put(stamped)
        self._in_flight = None

    async def run(self, events: AsyncIterable[ev.Event]) -> None:
        """Publish every event of ``events``, through the processors.

        Processors with ``process`` each get the events of the one before; consecutive
        ones with only ``feed`` run as one step, each event through all of them in turn,
        so an event costs one async iteration for the run of them, not one for each.
        ``events`` is closed (``aclose``) when the run stops, however it stops.
        """
        self._check_open()
        async with contextlib.AsyncExitStack() as stack:
            close = getattr(events, "aclose", None)
            if close is not None:  # last, after the stages reading it: a generator left
                # unfinished by a processor's or a sink's failure would be closed by the
                # garbage collector instead (a ResourceWarning on trio)
                stack.push_async_callback(close)
            for stage in _stages(self.processors):
                if isinstance(stage, list):
                    events = await stack.enter_async_context(
                        contextlib.aclosing(_fed(events, stage))
                    )
                else:
                    events = await stack.enter_async_context(stage.process(events))
            async for event in events:
                await self.publish(event)

    def _check_open(self) -> None:
        # Outside `async with` no sink task takes from the buffers: events would pile up
        # unseen (and a blocking sink's full buffer would hang the stream for good).
        if not self._open:
            raise UsageError(
                "publish and run a pipeline inside `async with Pipeline(...) as pipeline:`; "
                "its sinks run in the tasks it starts there (or use respflow.deliver)"
            )

    def _let_go(self) -> list[ev.Event]:
        """What the processors still hold (see ``close`` in the class docstring), asked
        once, by the first to need it as the pipeline ends: its end, or a sink closing
        because it was cancelled (on trio a sink's task may see that first)."""
        if self._held is None:
            held, self._close_failed = _held(self.processors)
            if self._close_failed is not None:
                _log.warning(
                    "respflow: a processor failed to let go what it held: %r", self._close_failed
                )
            self._held = [self._after_last(event) for event in held]
        return self._held

    def _after_last(self, event: ev.Event) -> ev.Event:
        """A held event in its place after every event already out: numbered as it came if
        that is later, else after the last (a processor may give back an event it held
        from earlier, whose number would send a cursor backwards)."""
        if event.sequence_number > self._stamper.seq:
            return self._stamper.passed(event)
        return self._stamper.made(event)

    def _sink_failed(self, outlet: _Outlet, exc: BaseException) -> None:
        self.failures.append((outlet.name, exc))
        _log.warning("respflow: sink %s failed and was closed: %r", outlet.name, exc)
        if outlet.required:
            self._failed = SinkFailed(
                f"the required sink {outlet.name} failed ({exc!r}); the pipeline stopped"
            )
            self._failed.__cause__ = exc
            assert self._group is not None
            self._group.cancel_scope.cancel()
            return
        last = outlet.last
        report = ev.StreamError(
            response_id=last.response_id if last else "",
            sequence_number=last.sequence_number if last else -1,
            cursor="",
            code="sink_failed",
            message=redact_text(
                f"the sink {outlet.name} failed ({exc!r}) and was closed; the others go on"
            ),
            fatal=False,
        )
        self._reports.append((outlet, report))

    def _send_reports(self) -> None:
        """Pass on sink failures, in the stream's order: each gets its place (cursor) here,
        between the events already published and the next, never ahead of either."""
        reports, self._reports = self._reports, []
        for failed, report in reports:
            stamped = self._stamper.made(report)
            for other in self._outlets:
                if other is not failed:
                    other.report(stamped)


async def deliver(
    events: AsyncIterable[ev.Event], *sinks: Sink | Attached, processors: Sequence[Any] = ()
) -> list[tuple[str, BaseException]]:
    """Run ``events`` through ``processors`` into ``sinks``; returns the sinks that failed."""
    async with Pipeline(*sinks, processors=processors) as pipeline:
        await pipeline.run(events)
    return pipeline.failures


_Feed = Callable[[ev.Event], list[ev.Event]]


def _held(processors: Sequence[Any]) -> tuple[list[ev.Event], Exception | None]:
    """What the feed processors still hold, in order: each one's ``close()``, after what
    the ones before it let go has gone through its ``feed``. A ``process`` stage has
    ended by then: what is let go before it passes it by. One that raises holds back no
    one else's: what the others let go still goes; the first exception comes with it."""
    out: list[ev.Event] = []
    failed: Exception | None = None
    for processor in processors:
        if hasattr(processor, "process") or not hasattr(processor, "feed"):
            continue
        try:
            out = [given for event in out for given in processor.feed(event)]
        except Exception as exc:  # what it could not judge is not passed on unjudged
            failed, out = failed or exc, []
        close = getattr(processor, "close", None)
        if close is not None:
            try:
                out += close()
            except Exception as exc:
                failed = failed or exc
    return out, failed


def _stages(processors: Sequence[Any]) -> list[Any]:
    """``processors`` as the pipeline runs them: those with ``process`` as they are, each
    run of consecutive ones with only ``feed`` as the list of their ``feed`` methods."""
    stages: list[Any] = []
    run: list[_Feed] = []
    for processor in processors:
        if hasattr(processor, "process"):
            if run:
                stages.append(run)
                run = []
            stages.append(processor)
        elif hasattr(processor, "feed"):
            run.append(processor.feed)
        else:
            raise UsageError(f"{processor!r} has neither process() nor feed()")
    if run:
        stages.append(run)
    return stages


async def _fed(
    events: AsyncIterable[ev.Event], feeds: list[_Feed]
) -> AsyncGenerator[ev.Event, None]:
    """Each event through ``feeds`` in turn. The events come one at a time, so each goes
    to ``feed`` (which takes one event the fastest), not ``feed_all``."""
    first, rest = feeds[0], feeds[1:]
    async for event in events:
        for out in _through(first(event), rest) if rest else first(event):
            yield out


def _through(events: list[ev.Event], feeds: list[_Feed]) -> Iterator[ev.Event]:
    """``events`` through ``feeds`` in turn, each out as soon as the last one gives it
    (as when each processor ran in its own step): a processor raising on an event
    leaves those before it delivered."""
    feed, rest = feeds[0], feeds[1:]
    for event in events:
        yield from _through(feed(event), rest) if rest else feed(event)


class _Outlet:
    """One sink's buffer and the task that empties it."""

    def __init__(self, attached: Attached, pipeline: Pipeline) -> None:
        self.sink = attached.sink
        self.name = attached.name
        self.policy = attached.policy
        self.capacity = attached.buffer
        self.required = attached.required
        self._pipeline = pipeline
        self._items: deque[ev.Event] = deque()
        self._readable = anyio.Event()
        self._writable = anyio.Event()
        self._ending = False
        self._open = True
        self._failed = False
        self._disconnected = False
        self._stuck = False
        self._first_missed: ev.Event | None = None
        # Bounds the sends after the stream ended, for a sink the stream never waits for.
        self._after_end = anyio.CancelScope()
        self._given = False
        """It was offered what the processors held at the end."""
        self._holding = False
        """Its buffer has some of that: it gets the buffer even if cancelled."""
        self._dropped = 0
        self._dropped_first: ev.Event | None = None
        self._dropped_last: ev.Event | None = None
        self.last: ev.Event | None = None
        """The last event given to the sink."""

    async def put(self, event: ev.Event) -> None:
        while self._open and self.policy == "block" and len(self._items) >= self.capacity:
            self._writable = anyio.Event()
            await self._writable.wait()
        self.put_nowait(event)

    def put_nowait(self, event: ev.Event) -> None:
        if not self._open:
            return
        if len(self._items) >= self.capacity and self.policy != "block":
            if self.policy == "disconnect":
                _log.info("respflow: sink %s fell behind and was disconnected", self.name)
                self._disconnected = True
                self._first_missed = self._items[0] if self._items else event
                self._open = False
                self._readable.set()
                return
            dropped = self._items.popleft()
            self._dropped += 1
            self._dropped_first = self._dropped_first or dropped
            self._dropped_last = dropped
        self._items.append(event)
        self._readable.set()

    def let_out(self, held: list[ev.Event]) -> None:
        """Pass on what the processors held at the end, whatever the policy (a few events)."""
        if self._open and not self._given:
            self._take(held)
            self._readable.set()

    def _take(self, held: list[ev.Event]) -> None:
        # A processor may have moved held text into the event a cancelled publish was
        # giving out: a sink that had not taken it gets it first, or that text is lost.
        # Not one whose full buffer held the publish back (or would have): it is told to
        # resume after what it took, as before.
        late = self._pipeline._in_flight
        if late is not None and self._missed(late):
            held = [late, *held]
        self._given, self._holding = True, bool(held)
        self._items.extend(held)

    def _missed(self, event: ev.Event) -> bool:
        """Whether it never took ``event``, though it had room for it."""
        if self.policy == "block" and len(self._items) >= self.capacity:
            return False
        return event is not self.last and all(e is not event for e in self._items)

    def report(self, event: ev.Event) -> None:
        """Pass on news of the pipeline, unless this sink's response has already ended."""
        latest = self._items[-1] if self._items else self.last
        if not isinstance(latest, ev.END_TYPES):
            self.put_nowait(event)

    def end(self) -> None:
        self._ending = True
        self._readable.set()
        if self.policy != "block":
            # The stream never waited for this sink, and the end does not either: it may
            # take what is left while it keeps taking, but one stuck send is let go.
            self._after_end.deadline = anyio.current_time() + self._pipeline._close_timeout

    async def run(self) -> None:
        try:
            with self._after_end:
                await self._drain()
            if self._after_end.cancelled_caught:
                self._let_go_stuck()
        except Exception as exc:  # any sink bug: isolate it
            self._failed = True
            self._open = False
            self._pipeline._sink_failed(self, exc)
        finally:
            self._open = False
            self._writable.set()
            await self._close()

    async def _drain(self) -> None:
        while True:
            if not self._items and self._open and not self._ending:
                self._readable = anyio.Event()
                await self._readable.wait()
                continue
            if not self._open or not self._items:
                break
            # The notice and the next event are taken together: everything the notice
            # counts is older than that event, and drops during the sends below are
            # newer, for the next notice.
            notice = self._take_dropped() if self._dropped else None
            event = self._items.popleft()
            self._writable.set()
            if notice is not None:
                await self._send(notice)
            await self._send(event)
        if self._dropped and self._open:
            await self._send(self._take_dropped())

    async def _send(self, event: ev.Event) -> None:
        await self.sink.send(event)
        self.last = event
        if self._ending and self.policy != "block":
            self._after_end.deadline = anyio.current_time() + self._pipeline._close_timeout

    def _let_go_stuck(self) -> None:
        self._stuck = True
        self._open = False
        timeout = self._pipeline._close_timeout
        stuck = TimeoutError(
            f"the sink {self.name} took no event for {timeout:g} s after the stream ended "
            f"(policy {self.policy}); it was let go and closed"
        )
        self._pipeline.failures.append((self.name, stuck))
        _log.warning("respflow: %s", stuck)

    def _take_dropped(self) -> ev.StreamDropped:
        first, last = self._dropped_first, self._dropped_last
        assert first is not None
        assert last is not None
        count, self._dropped = self._dropped, 0
        self._dropped_first = self._dropped_last = None
        return ev.StreamDropped(
            response_id=last.response_id,
            sequence_number=last.sequence_number,
            cursor=last.cursor,
            count=count,
            first_cursor=first.cursor,
            last_cursor=last.cursor,
        )

    async def _close(self) -> None:
        """The sink's end: a ``stream.truncated`` if its response did not end, then aclose.

        Each step has its own bound, so a sink that hangs on its notice is still closed.
        """
        timeout = self._pipeline._close_timeout
        if not (self._failed or self._stuck or self._disconnected):
            if not self._given and not isinstance(self.last, ev.END_TYPES):
                self._take(self._pipeline._let_go())  # cancelled before the end offered it
            if self._holding and self._items:
                await self._send_rest(timeout)
        last = self.last
        notice = self._last_word(last) if not isinstance(last, ev.END_TYPES) else None
        if notice is not None and not (self._failed or self._stuck):
            with anyio.CancelScope(shield=True), anyio.move_on_after(timeout) as waited:
                try:
                    await self.sink.send(notice)
                except Exception as exc:
                    _log.warning("respflow: sink %s failed on its last event: %r", self.name, exc)
            if waited.cancelled_caught:
                _log.warning(
                    "respflow: sink %s did not take its stream.truncated within %g s",
                    self.name,
                    timeout,
                )
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            try:
                await _maybe_await(self.sink.aclose())
            except Exception as exc:
                _log.warning("respflow: sink %s failed to close: %r", self.name, exc)

    async def _send_rest(self, timeout: float) -> None:
        """The events still buffered when a cancelled pipeline stopped this sink, up to
        what the processors let go: that text exists nowhere else, and what comes before
        it is sent too, so the ``stream.truncated`` after it still says where to resume."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            try:
                while self._items:
                    event = self._items.popleft()
                    await self.sink.send(event)
                    self.last = event
            except Exception as exc:
                self._failed = True
                _log.warning("respflow: sink %s failed on its last events: %r", self.name, exc)

    def _last_word(self, last: ev.Event | None) -> ev.StreamTruncated | None:
        """What a sink left before its response's end is told (None: it never saw one)."""
        if last is None:
            if not (self._disconnected and self._first_missed is not None):
                return None
            # Let go before it took anything: it learns so, and resumes from the start.
            return ev.StreamTruncated(
                response_id=self._first_missed.response_id,
                sequence_number=-1,
                cursor="-1-0",
                last_sequence_number=None,
                message="this sink fell behind and was disconnected (policy disconnect) "
                "before it took any event; resume from the start",
            )
        if self._disconnected:
            why = (
                "this sink fell behind and was disconnected (policy disconnect); "
                f"resume after cursor {last.cursor}"
            )
        else:
            why = "the pipeline stopped before the response ended"
        return ev.StreamTruncated(
            response_id=last.response_id,
            sequence_number=last.sequence_number,
            cursor=f"{last.sequence_number}-{_next_k(last.cursor)}",
            last_sequence_number=last.sequence_number,
            message=why,
        )


def _next_k(cursor: str) -> int:
    try:
        return int(cursor.rsplit("-", 1)[1]) + 1
    except (IndexError, ValueError):
        return 0


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value
