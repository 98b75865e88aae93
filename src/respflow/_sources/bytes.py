"""Async sources: any stream of bytes in, normalized events out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .._core.assembler import Assembler
from .._events import END_TYPES, Event, StreamError
from .._exceptions import UsageError
from .taps import Record, TappedAssembler, assembler_for

__all__ = ["aiter_events", "drive"]

T = TypeVar("T")


def aiter_events(
    chunks: AsyncIterable[bytes],
    *,
    assembler: Assembler | None = None,
    record: Record | None = None,
    processors: Sequence[Any] = (),
) -> AsyncIterator[Event]:
    """Normalized events from a byte stream: an HTTP body, a socket, a file.

    A source that fails mid-stream does not raise here: its failure becomes a fatal
    ``stream.error`` followed by the response's end, so what arrived is never lost.
    Cancellation is not caught.

    Works on asyncio and trio: nothing here awaits but the source.

    ``record`` (a :class:`respflow.Recorder`) gets the raw bytes before they are decoded;
    it cannot be combined with ``assembler``.

    ``processors`` are sans-I/O steps with ``feed(event) -> list[Event]`` (like
    :class:`respflow.LinkRewriter`), applied in order to the events of each chunk as it is
    read; one with ``feed_all(events)`` takes them in one call, so an event it passes
    unchanged costs no call of its own; a ``feed`` set on the instance itself (a wrapper
    that traces, ``mock.patch.object``) is called for every event instead, as a Pipeline
    calls it (one replaced once the iteration has started is not seen). The same events
    as feeding each event in turn;
    an exception a processor raises comes out of the iteration as it was raised and ends
    it (the events of that chunk not yet yielded are not), and ``chunks`` is closed.
    One with ``close() -> list[Event]`` is asked, once, when ``chunks`` ends or fails,
    for what it still holds (a LinkRewriter's held start of a link): those events come
    before the ones that report the end, through the processors after it.
    """
    # Only an assembler made here has numbered nothing yet: one that has read part of the
    # stream may go on with a number it gave before, k past 0.
    then = _steps(processors, numbered=assembler is None)
    held = _let_go(processors) if then is not None else None
    if record is None:
        asm = assembler or Assembler()
        return drive(chunks, asm.feed, asm, "the byte source", then=then, held=held)
    if assembler is not None:
        raise UsageError("pass record= or assembler=, not both: a recorder taps its own")
    tapped = assembler_for(record)
    assert isinstance(tapped, TappedAssembler)

    async def close_tap() -> None:  # also when the consumer leaves early
        tapped.tap.close()

    return drive(
        chunks, tapped.feed, tapped, "the byte source", cleanup=close_tap, then=then, held=held
    )


def _steps(
    processors: Sequence[Any], *, numbered: bool = False
) -> Callable[[list[Event]], list[Event]] | None:
    """One function that runs a list of events through ``processors``; None for none.
    ``numbered``: the events are all an assembler's since it was made."""
    steps: list[Callable[[list[Event]], list[Event]]] = []
    for processor in processors:
        own = _own_methods(processor)
        if numbered and not steps and not own and hasattr(processor, "_feed_all_numbered"):
            # The first processor gets the assembler's events as it numbered them: a
            # LinkRewriter then need not read their cursors (see _feed_all_numbered).
            steps.append(processor._feed_all_numbered)
        elif hasattr(processor, "feed_all") or hasattr(processor, "feed"):
            steps.append(_step(processor, own))
        else:
            raise UsageError(
                f"{processor!r} has no feed(event): aiter_events takes sans-I/O processors "
                "only; run one with process(events) (like FileFetcher) in a Pipeline"
            )
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run(events: list[Event]) -> list[Event]:
        for step in steps:
            if not events:
                break
            events = step(events)
        return events

    return run


def _let_go(processors: Sequence[Any]) -> Callable[[], list[Event]]:
    """What ``processors`` still hold when the input ends: each one's ``close()``, if it
    has one, after what the ones before it let go has gone through it."""
    steps = [_step(processor, _own_methods(processor)) for processor in processors]

    def held() -> list[Event]:
        out: list[Event] = []
        try:
            for step, processor in zip(steps, processors, strict=True):
                out = step(out) if out else []
                close = getattr(processor, "close", None)
                if close is not None:
                    out += close()
        except Exception as exc:
            raise _ProcessorFailed(exc) from exc
        return out

    return held


class _ProcessorFailed(Exception):
    """A processor raised ``raised``: not a failure of the source."""

    def __init__(self, raised: Exception) -> None:
        super().__init__(raised)
        self.raised = raised


def _own_methods(processor: Any) -> set[str]:
    """Of ``feed`` and ``feed_all``, those set on the instance itself, replacing its
    class's (a wrapper that traces or counts, ``mock.patch.object``): they decide, not
    the class's batch path, which would not call them. Read once, as the iteration
    starts: a method replaced while it runs is not seen."""
    return {"feed", "feed_all"} & set(getattr(processor, "__dict__", ()))


def _step(processor: Any, own: set[str]) -> Callable[[list[Event]], list[Event]]:
    """How a list of events goes through ``processor``: its ``feed_all`` unless only its
    ``feed`` is its own or it has no ``feed_all``; else each event through ``feed``."""
    if hasattr(processor, "feed_all") and own != {"feed"}:
        step: Callable[[list[Event]], list[Event]] = processor.feed_all
        return step
    return _each(processor.feed)


def _each(feed: Callable[[Event], list[Event]]) -> Callable[[list[Event]], list[Event]]:
    return lambda events: [out for event in events for out in feed(event)]


async def drive(
    source: AsyncIterable[T],
    feed: Callable[[T], list[Event]],
    asm: Assembler,
    what: str,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    then: Callable[[list[Event]], list[Event]] | None = None,
    held: Callable[[], list[Event]] | None = None,
) -> AsyncIterator[Event]:
    """Feed each item of ``source`` to ``asm``; a failure of the source ends the response.

    ``cleanup`` runs however the iteration ends; ``then`` takes each list of events the
    assembler gives and returns what to yield instead; ``held``, called once when the
    source ends or fails, gives what ``then`` still holds, yielded before the events that
    report the end. Callers return this generator itself rather than wrapping it: an
    inner generator left unfinished is a ResourceWarning on trio.
    """

    def after(events: list[Event]) -> list[Event]:
        if then is None or not events:
            return events
        try:
            return then(events)
        except Exception as exc:
            raise _ProcessorFailed(exc) from exc

    try:
        broke: list[Event] = []  # the core's report of a source that failed
        try:
            async for item in source:
                events = feed(item)
                if then is not None and events:
                    try:  # in line, not after(): a call per chunk is worth saving
                        events = then(events)
                    except Exception as exc:
                        raise _ProcessorFailed(exc) from exc
                for event in events:
                    yield event
        except _ProcessorFailed:
            raise
        except Exception as exc:
            broke = asm.transport_error(f"{what} failed: {exc!r}")
        for event in _ending([*broke, *asm.close()], after, held):
            yield event
    except _ProcessorFailed as failed:  # also from the events that end a response
        # The iteration ends here: the source is not read again, so it is closed now
        # rather than left to the garbage collector (a ResourceWarning on trio).
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
        raise failed.raised from None
    finally:
        if cleanup is not None:
            await cleanup()


def _ending(
    events: list[Event],
    after: Callable[[list[Event]], list[Event]],
    held: Callable[[], list[Event]] | None,
) -> list[Event]:
    """The core's last ``events`` through ``after``, with what the processors hold let
    out just before the first that reports the end (a fatal error, the end itself): it
    came before the cut, and events the core still had (a last frame with no blank line
    after it) came before it."""
    if held is None:
        return after(events)
    cut = next((i for i, event in enumerate(events) if _reports_end(event)), len(events))
    before = after(events[:cut])  # fed first: it may add to what is held
    return [*before, *held(), *after(events[cut:])]


def _reports_end(event: Event) -> bool:
    return isinstance(event, END_TYPES) or (isinstance(event, StreamError) and event.fatal)
