"""Producer takeover, tested through any :class:`respflow.Broker`.

A producer "dies" here the way a SIGKILLed or frozen process looks to everyone else: from
one moment on, none of its broker calls get through (no publish, no renewal, no release,
no end). :class:`Stalled` is that producer's view of the real broker under test. Another
:class:`respflow.Runner` with ``takeover=True`` must then continue the response, and the
dead producer, woken up, must not be able to write.

Subclass :class:`TakeoverConformance` next to your broker's :class:`BrokerConformance`
and define :meth:`open_broker` the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .. import _events as ev
from .._delivery.broker import Broker, Lease, LogStatus, Subscription
from .._delivery.runner import Runner
from .._files.fetcher import FileFetcher
from .._files.storage import LocalStorage
from .._sources.openai import resume
from ._mock_server import MockServer
from ._recorded import Recording

__all__ = ["Stalled", "TakeoverConformance"]

_SAMPLES = resources.files("respflow").joinpath("samples")
_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
_LEASE = 0.4
"""Seconds a lease lasts in these tests: a takeover comes about this long after a death."""


class Stalled:
    """One producer's view of a broker, which stops answering it once it has published
    ``publishes`` batches (or the first batch holding an event of type ``after``), until
    :meth:`wake` (then it goes on with what it was doing)."""

    def __init__(
        self, broker: Broker, publishes: int | None = None, *, after: type[Any] | None = None
    ) -> None:
        self.broker = broker
        self.publishes = publishes
        self.after = after
        self.dead = anyio.Event()
        self.appended = 0
        """Events its publishes appended, before it died."""
        self._awake = anyio.Event()

    def wake(self) -> None:
        self._awake.set()

    async def _gate(self) -> None:
        if self.dead.is_set() and not self._awake.is_set():
            await self._awake.wait()

    async def publish(self, events: Sequence[ev.Event], *, lease: Lease | None = None) -> int:
        await self._gate()
        appended = await self.broker.publish(events, lease=lease)
        self.appended += appended
        if self.publishes is not None:
            self.publishes -= 1
        if self.publishes == 0 or any(isinstance(e, self.after or ()) for e in events):
            self.dead.set()
        return appended

    async def subscribe(self, response_id: str, *, after: str | None = None) -> Subscription:
        await self._gate()
        return await self.broker.subscribe(response_id, after=after)

    async def status(self, response_id: str) -> LogStatus | None:
        await self._gate()
        return await self.broker.status(response_id)

    async def claim(self, response_id: str, owner: str, ttl: float) -> Lease | None:
        await self._gate()
        return await self.broker.claim(response_id, owner, ttl)

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        await self._gate()
        return await self.broker.renew(lease, ttl)

    async def release(self, lease: Lease) -> None:
        await self._gate()
        await self.broker.release(lease)

    async def unfinished(self) -> dict[str, bool]:
        await self._gate()
        return await self.broker.unfinished()

    async def aclose(self) -> None:
        pass


def _sample() -> Recording:
    return Recording.from_bytes(_SAMPLES.joinpath("code_interpreter.sse").read_bytes())


@contextlib.asynccontextmanager
async def _api(pace: float = 0.002, file_delay: float = 0.0) -> AsyncIterator[openai.AsyncOpenAI]:
    files = Path(str(_SAMPLES.joinpath("files")))
    async with (
        MockServer(
            _sample(), files=files, pace=pace, fresh_ids=True, file_delay=file_delay
        ) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
    ):
        yield client


async def _read_all(broker: Broker, response_id: str) -> list[ev.Event]:
    with anyio.fail_after(30):
        return [e async for e in await broker.subscribe(response_id)]


def _json(events: Sequence[ev.Event]) -> list[Any]:
    return [msgspec.to_builtins(e) | {"type": e.type} for e in events]


class TakeoverConformance:
    """A response outlives its producer: subclass and define :meth:`open_broker`."""

    pytestmark = pytest.mark.anyio

    def open_broker(self) -> contextlib.AbstractAsyncContextManager[Broker]:
        """An empty broker, closed on exit."""
        raise NotImplementedError("subclasses say how to open their broker")

    def another_client(self, broker: Broker) -> contextlib.AbstractAsyncContextManager[Broker]:
        """A second client of the same store, which the producer that dies uses (as
        another process would); the same object for a broker in one process."""

        @contextlib.asynccontextmanager
        async def same() -> AsyncIterator[Broker]:
            yield broker

        return same()

    async def _die_after(
        self,
        broker: Broker,
        client: openai.AsyncOpenAI,
        publishes: int | None,
        *,
        after: type[Any] | None = None,
        background: bool = True,
        processors: Any = list,
        successor_processors: Any = None,
    ) -> tuple[str, list[ev.Event], Stalled, Runner]:
        """Starts a response on a producer that dies after ``publishes`` publishes (or
        its first event of type ``after``), with a second runner watching (with
        ``successor_processors``, if given, else the same ``processors``); returns what
        a reader from the start got."""
        async with self.another_client(broker) as theirs, anyio.create_task_group() as tg:
            stalled = Stalled(theirs, publishes, after=after)
            dying = Runner(client, stalled, lease_ttl=_LEASE, owner="dying", processors=processors)
            await tg.start(_hold, dying)
            async with Runner(
                client,
                broker,
                lease_ttl=_LEASE,
                owner="successor",
                takeover=True,
                processors=successor_processors or processors,
            ) as successor:
                rid = await dying.start(
                    model="gpt-5", input="dice", tools=_TOOLS, background=background
                )
                events = await _read_all(broker, rid)
                await successor.wait(rid)
            stalled.wake()  # what it still tries to publish is refused: it lost its lease
            tg.cancel_scope.cancel()
        return rid, events, stalled, successor

    # -- background responses are continued ---------------------------------------------

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(publishes=st.integers(1, 120))
    def test_a_dead_producers_response_is_continued_once_in_order(
        self, anyio_backend: str, publishes: int
    ) -> None:
        anyio.run(self._continued, publishes, backend=anyio_backend)

    async def _continued(self, publishes: int) -> None:
        async with self.open_broker() as broker, _api() as client:
            rid, events, _, _ = await self._die_after(broker, client, publishes)
            # What the API replays of that response, rebuilt without any producer dying.
            with anyio.fail_after(30):
                whole = [e async for e in resume(client, rid)]
            assert _json(events) == _json(whole)
            assert isinstance(events[-1], ev.ResponseCompleted)

    async def test_a_stale_producer_that_wakes_up_cannot_write(self) -> None:
        async with self.open_broker() as broker, _api() as client:
            async with self.another_client(broker) as theirs, anyio.create_task_group() as tg:
                stalled = Stalled(theirs, 20)
                dying = Runner(client, stalled, lease_ttl=_LEASE, owner="dying")
                await tg.start(_hold, dying)
                async with Runner(
                    client, broker, lease_ttl=_LEASE, owner="successor", takeover=True
                ) as successor:
                    rid = await dying.start(
                        model="gpt-5", input="dice", tools=_TOOLS, background=True
                    )
                    before = await _read_all(broker, rid)
                    await successor.wait(rid)
                stalled.wake()  # its pending publish (and its end) are refused
                with anyio.fail_after(10):
                    await dying.wait(rid)
                tg.cancel_scope.cancel()
            assert await _read_all(broker, rid) == before
            assert [type(e) for e in before].count(ev.ResponseCompleted) == 1

    @pytest.mark.parametrize("after", [ev.FileSaved, ev.CodeStarted])
    async def test_files_are_reported_once_across_a_takeover(
        self, tmp_path: Path, after: type[ev.Event]
    ) -> None:
        # Slow downloads put each producer's file.saved somewhere else in the stream: the
        # successor's must neither repeat the dead one's nor vanish below its last cursor.
        async with self.open_broker() as broker, _api(file_delay=0.2) as client:
            storage = LocalStorage(tmp_path)

            def processors() -> list[Any]:
                return [FileFetcher(client, storage)]

            _, events, _, _ = await self._die_after(
                broker, client, None, after=after, processors=processors
            )
        outcomes = [e for e in events if isinstance(e, ev.FileSaved | ev.FileFailed)]
        keys = [(e.container_id, e.file_id, e.path) for e in outcomes]
        assert outcomes
        assert len(keys) == len(set(keys))
        assert all(isinstance(e, ev.FileSaved) for e in outcomes)
        assert isinstance(events[-1], ev.ResponseCompleted)
        cursors = [ev.parse_cursor(e.cursor) for e in events]
        assert cursors == sorted(set(cursors))

    @pytest.mark.parametrize(("dying_at", "successor_at"), [(5, 12), (12, 5)])
    async def test_a_file_outcome_is_neither_repeated_nor_lost(
        self, dying_at: int, successor_at: int
    ) -> None:
        # Where a file's outcome lands depends on when its download ended, so the two
        # producers put it in different places: before the dead one's last publish and
        # after it, or the other way round. The dead one dies after 8 publishes.
        async with self.open_broker() as broker, _api() as client:
            rid, events, _, _ = await self._die_after(
                broker,
                client,
                8,
                processors=lambda: [_Announce(dying_at)],
                successor_processors=lambda: [_Announce(successor_at)],
            )
            with anyio.fail_after(30):
                whole = [e async for e in resume(client, rid)]
        announced = [e for e in events if isinstance(e, ev.FileSaved)]
        assert [e.filename for e in announced] == ["announced.txt"]
        cursors = [ev.parse_cursor(e.cursor) for e in events]
        assert cursors == sorted(set(cursors))
        wire = [e for e in events if not isinstance(e, ev.FileSaved)]
        assert [(e.type, e.sequence_number) for e in wire] == [
            (e.type, e.sequence_number) for e in whole
        ]

    async def test_a_runner_that_exits_hands_its_background_responses_over(self) -> None:
        async with (
            self.open_broker() as broker,
            _api(pace=0.01) as client,
            Runner(client, broker, lease_ttl=_LEASE, owner="successor", takeover=True) as successor,
        ):
            async with Runner(
                client, broker, lease_ttl=_LEASE, owner="leaving", takeover=True
            ) as leaving:
                rid = await leaving.start(
                    model="gpt-5", input="dice", tools=_TOOLS, background=True
                )
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        assert isinstance(events[-1], ev.ResponseCompleted)
        assert not any(isinstance(e, ev.StreamTruncated) for e in events)

    # -- foreground responses cannot be replayed ----------------------------------------

    async def test_a_dead_producers_foreground_response_ends_saying_why(self) -> None:
        async with self.open_broker() as broker, _api() as client:
            _, events, stalled, _ = await self._die_after(broker, client, 10, background=False)
        assert len(events) == stalled.appended + 1  # a publish may carry several events
        end = events[-1]
        assert isinstance(end, ev.StreamTruncated)
        assert "background=True" in end.message


class _Announce:
    """A processor that reports a saved file after the ``at``-th event it sees, as a
    fetcher does whenever its download ends."""

    def __init__(self, at: int) -> None:
        self._at = at
        self._seen = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        self._seen += 1
        if self._seen != self._at:
            return [event]
        saved = ev.FileSaved(
            event.response_id,
            event.sequence_number,
            "",
            container_id="cntr_1",
            file_id="cfile_1",
            filename="announced.txt",
            location="announced.txt",
            size=1,
            sha256="0" * 64,
        )
        return [event, saved]


async def _hold(runner: Runner, *, task_status: Any) -> None:
    """Keeps ``runner`` open in a task of its own, so a test can leave it running."""
    async with runner:
        task_status.started()
        await anyio.sleep_forever()
