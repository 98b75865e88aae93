"""Running responses in the background of a server: from ``create`` to a broker.

A web handler wants two things from a response it starts: its id, at once (to answer the
request with where to follow it), and its events, in a place any reader can follow them
from (the broker). :class:`Runner` gives both: ``await runner.start(**create)`` returns
as soon as the response id is known and its first event is in the broker, while the rest
of the response runs in the runner's task group through the processors (file fetcher,
link rewriter) into the broker. A failure before the first event is raised by ``start``
itself, as the typed exception :func:`respflow.stream` raises.

The runner holds a lease on each response it publishes and renews it while it runs; a
producer that loses its lease (it stalled, and another took the response over) stops
publishing at once. Leaving the runner, or cancelling a response, ends each response it
ran with an end event in the broker (``stream.truncated``, unless the response ended).
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
from anyio.abc import TaskGroup, TaskStatus

from .. import _events as ev
from .._exceptions import LeaseLost, RespflowError, UsageError, sole_exception
from .broker import Broker, Lease
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


class _BrokerSink:
    """Publishes a response's events into the broker under the runner's lease; once the
    lease is lost it publishes nothing more (the response has another producer)."""

    def __init__(self, broker: Broker, lease: Lease) -> None:
        self._broker = broker
        self.lease = lease
        self.lost = False
        self.first = anyio.Event()

    async def send(self, event: ev.Event) -> None:
        if not self.lost:
            try:
                await self._broker.publish([event], lease=self.lease)
            except LeaseLost:
                self.lost = True
                raise
        self.first.set()

    async def aclose(self) -> None:
        self.first.set()


class Runner:
    """Starts responses and runs each one, through ``processors``, into ``broker``.

    ``async with Runner(client, broker) as runner:`` then ``rid = await runner.start(...)``.

    Args:
        client: the ``openai.AsyncOpenAI`` (or Azure) client responses are created with.
        broker: where each response's events go (:class:`respflow.MemoryBroker`, ...).
        processors: called once per response for its processors, in order, e.g.
            ``lambda: [FileFetcher(client, storage), LinkRewriter(url)]``.
        owner: this runner's name on leases (default: random, unique per runner).
        lease_ttl: seconds a lease lasts unless renewed; renewed every third of it.
        stream: the function that opens a response's stream (default
            :func:`respflow.stream`); keyword arguments of ``start`` go to it.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        broker: Broker,
        *,
        processors: Callable[[], Sequence[Any]] = list,
        owner: str | None = None,
        lease_ttl: float = 10.0,
        stream: Callable[..., Any] | None = None,
    ) -> None:
        if not lease_ttl > 0 or not math.isfinite(lease_ttl):
            raise UsageError("lease_ttl must be a positive number of seconds")
        self.client = client
        self.broker = broker
        self.processors = processors
        self.owner = owner or f"runner-{secrets.token_hex(6)}"
        self.lease_ttl = lease_ttl
        self._stream = stream
        self._group: TaskGroup | None = None
        self._running: dict[str, _Running] = {}
        self._closing = False

    async def __aenter__(self) -> Runner:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._closing = True
        for running in self._running.values():
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
        sink = _BrokerSink(self.broker, lease)
        running = _Running(response_id, bool(create.get("background")), anyio.CancelScope())
        self._running[response_id] = running
        if self._closing:
            running.scope.cancel()
        announced = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, sink, tg.cancel_scope)
                tg.start_soon(
                    self._deliver, sink, running.scope, first, events, processors, tg.cancel_scope
                )
                await sink.first.wait()
                task_status.started(response_id)
                announced = True
        except Exception as exc:
            if not announced:
                sole = sole_exception(exc) if isinstance(exc, BaseExceptionGroup) else exc
                raise (sole or exc) from None
            # One response's failure must not take the runner's other responses with it.
            _log.exception("respflow: running response %s failed", response_id)
        finally:
            with anyio.CancelScope(shield=True):
                await self._end_if_open(sink, response_id)
                await self.broker.release(sink.lease)
            del self._running[response_id]
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

    async def _end_if_open(self, sink: _BrokerSink, response_id: str) -> None:
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
                message="the server stopped following this response before it ended",
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


async def _prepend(first: ev.Event, rest: AsyncIterator[ev.Event]) -> AsyncIterator[ev.Event]:
    yield first
    async for event in rest:
        yield event
