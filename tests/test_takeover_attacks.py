"""Attacks on producer takeover: the deaths, races and exits the happy path never meets.

Each test kills a producer (:class:`respflow.testing.Stalled`: from one moment on none of
its broker calls get through) at a place chosen to hurt, and checks the promise: a
background response is continued by exactly one runner, readers see every event once,
in order, with one end; a stale producer that wakes cannot write; nothing hangs.
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

import respflow
from respflow import Broker, MemoryBroker, Runner
from respflow import _events as ev
from respflow._delivery.runner import _Continuation
from respflow.testing import MockServer, Recording, Stalled, make_events

pytestmark = pytest.mark.anyio

_SAMPLES = resources.files("respflow").joinpath("samples")
_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
_LEASE = 0.4
# For a test whose producer must keep its lease to the end: a loaded CI runner once
# renewed a 0.4 s lease late, and the watcher rightly took the response over.
_LIVE_LEASE = 2.0


@contextlib.asynccontextmanager
async def _api(
    pace: float = 0.002, file_delay: float = 0.0
) -> AsyncIterator[tuple[MockServer, openai.AsyncOpenAI]]:
    recording = Recording.from_bytes(_SAMPLES.joinpath("code_interpreter.sse").read_bytes())
    async with (
        MockServer(
            recording,
            files=Path(str(_SAMPLES.joinpath("files"))),
            pace=pace,
            fresh_ids=True,
            file_delay=file_delay,
        ) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
    ):
        yield mock, client


@contextlib.asynccontextmanager
async def _broker(**options: Any) -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(**options)
    try:
        yield broker
    finally:
        await broker.aclose()


async def _hold(runner: Runner, *, task_status: Any) -> None:
    async with runner:
        task_status.started()
        await anyio.sleep_forever()


async def _read_all(broker: Broker, response_id: str) -> list[ev.Event]:
    with anyio.fail_after(30):
        return [e async for e in await broker.subscribe(response_id)]


async def _whole(client: openai.AsyncOpenAI, response_id: str) -> list[ev.Event]:
    """What the API replays of the response, rebuilt with no producer dying."""
    with anyio.fail_after(30):
        return [e async for e in respflow.resume(client, response_id)]


def _json(events: Sequence[ev.Event]) -> list[Any]:
    return [msgspec.to_builtins(e) | {"type": e.type} for e in events]


def _replays(mock: MockServer, response_id: str) -> int:
    return sum(1 for r in mock.requests if r.method == "GET" and r.path.endswith(response_id))


async def _start(runner: Runner, background: bool = True) -> str:
    return await runner.start(model="gpt-5", input="dice", tools=_TOOLS, background=background)


async def _dying(tg: Any, stalled: Stalled, client: openai.AsyncOpenAI, **options: Any) -> Runner:
    """A runner on ``stalled``, kept open in ``tg`` (the test leaves it running)."""
    runner = Runner(client, stalled, lease_ttl=_LEASE, owner="dying", **options)
    await tg.start(_hold, runner)
    return runner


# -- where the producer dies -------------------------------------------------------------


@pytest.mark.parametrize(
    "publishes",
    [
        1,  # right after response.started
        73,  # after 76-0: the other two events of sequence number 76 are not in the log
        74,  # after 76-1: between the k-events of one sequence number
        118,  # right before the end
    ],
)
async def test_a_death_anywhere_is_continued_once_in_order(publishes: int) -> None:
    async with _broker() as broker, _api() as (_, client), anyio.create_task_group() as tg:
        stalled = Stalled(broker, publishes)
        dying = await _dying(tg, stalled, client)
        async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as successor:
            rid = await _start(dying)
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        stalled.wake()
        tg.cancel_scope.cancel()
        assert _json(events) == _json(await _whole(client, rid))


# -- races between runners ---------------------------------------------------------------


async def test_of_two_watching_runners_exactly_one_continues() -> None:
    async with _broker() as broker, _api() as (mock, client), anyio.create_task_group() as tg:
        stalled = Stalled(broker, 30)
        dying = await _dying(tg, stalled, client)
        async with (
            Runner(client, broker, lease_ttl=_LEASE, takeover=True) as first,
            Runner(client, broker, lease_ttl=_LEASE, takeover=True) as second,
        ):
            rid = await _start(dying)
            events = await _read_all(broker, rid)
            await first.wait(rid)
            await second.wait(rid)
        stalled.wake()
        tg.cancel_scope.cancel()
        assert _replays(mock, rid) == 1
        assert _json(events) == _json(await _whole(client, rid))


async def test_a_successor_that_dies_mid_continuation_is_taken_over_again() -> None:
    async with _broker() as broker, _api(pace=0.005) as (mock, client):
        async with anyio.create_task_group() as tg:
            stalled = Stalled(broker, 20)
            dying = await _dying(tg, stalled, client)
            frozen = Stalled(broker, 15)  # the successor dies after 15 publishes of its own
            await tg.start(_hold, Runner(client, frozen, lease_ttl=_LEASE, takeover=True))
            rid = await _start(dying)
            reader = _Reader(broker, rid)
            tg.start_soon(reader.run)
            with anyio.fail_after(30):
                await frozen.dead.wait()
            async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as third:
                with anyio.fail_after(30):
                    await reader.done.wait()
                await third.wait(rid)
            stalled.wake()
            frozen.wake()  # both stale producers try to write again: refused
            await anyio.sleep(3 * _LEASE)
            tg.cancel_scope.cancel()
        # Taken over again (a third takeover is fair when a loaded machine lets a lease lapse).
        assert _replays(mock, rid) >= 2
        assert _json(reader.events) == _json(await _whole(client, rid))
        assert _json(await _read_all(broker, rid)) == _json(reader.events)


class _Reader:
    """Follows a response from its first event to its end, as a browser would."""

    def __init__(self, broker: Broker, response_id: str) -> None:
        self._broker = broker
        self._response_id = response_id
        self.events: list[ev.Event] = []
        self.done = anyio.Event()

    async def run(self) -> None:
        async for event in await self._broker.subscribe(self._response_id):
            self.events.append(event)
        self.done.set()


# -- the API's side of the replay ---------------------------------------------------------


async def test_a_response_the_api_no_longer_has_ends_saying_so() -> None:
    async with (
        _broker() as broker,
        _api(pace=0.01) as (mock, client),
        anyio.create_task_group() as tg,
    ):
        stalled = Stalled(broker, 10)
        dying = await _dying(tg, stalled, client)
        rid = await _start(dying)
        with anyio.fail_after(30):
            await stalled.dead.wait()
        mock.fail_next(404)  # the replay the successor asks for: expired
        async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as successor:
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        stalled.wake()
        tg.cancel_scope.cancel()
    assert len(events) == 11
    end = events[-1]
    assert isinstance(end, ev.StreamTruncated)
    assert "continuing it failed" in end.message
    assert "HTTP 404" in end.message


async def test_a_replay_cut_midway_is_resumed_and_continued_once() -> None:
    async with _broker() as broker, _api() as (mock, client), anyio.create_task_group() as tg:
        stalled = Stalled(broker, 40)
        dying = await _dying(tg, stalled, client)
        rid = await _start(dying)
        with anyio.fail_after(30):
            await stalled.dead.wait()
        mock.cut_after, mock.max_cuts = 60, mock.cuts + 2
        async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as successor:
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        stalled.wake()
        tg.cancel_scope.cancel()
        assert mock.cuts >= 1
        mock.cut_after = None
        assert _json(events) == _json(await _whole(client, rid))


# -- leaving while a takeover is under way -----------------------------------------------


async def test_a_runner_leaving_while_it_opens_a_replay_stops_at_once_and_hands_it_over() -> None:
    opening = anyio.Event()

    async def never_answers(
        client: Any, response_id: str, **options: Any
    ) -> AsyncIterator[ev.Event]:
        opening.set()
        await anyio.sleep_forever()
        nothing: list[ev.Event] = []
        for event in nothing:  # pragma: no cover (a generator that never yields)
            yield event

    async with _broker() as broker, _api(pace=0.01) as (_, client):
        async with anyio.create_task_group() as tg:
            stalled = Stalled(broker, 10)
            dying = await _dying(tg, stalled, client)
            rid = await _start(dying)
            try:
                with anyio.fail_after(10):  # a hang guard: leaving must not wait for the API
                    async with Runner(
                        client, broker, lease_ttl=_LEASE, takeover=True, resume=never_answers
                    ):
                        await opening.wait()
            finally:
                stalled.wake()
                tg.cancel_scope.cancel()
        status = await broker.status(rid)
        assert status is not None
        assert not status.ended  # handed over, for another runner to continue
        assert status.owner is None
        async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as successor:
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        assert _json(events) == _json(await _whole(client, rid))


# -- a log that keeps only its newest events ---------------------------------------------


@pytest.mark.parametrize("publishes", [100, 112])
async def test_a_trimmed_log_taken_over_repeats_no_file_outcome(
    tmp_path: Path, publishes: int
) -> None:
    # The log keeps 8 to 16 events: when the producer dies, the image saved at sequence
    # number 76 is long gone from it, and the successor's own outcome for that image must
    # not be published again.
    async with (
        _broker(max_events=8) as broker,
        _api() as (_, client),
        anyio.create_task_group() as tg,
    ):
        storage = respflow.LocalStorage(tmp_path)

        def processors() -> list[Any]:
            return [respflow.FileFetcher(client, storage)]

        stalled = Stalled(broker, publishes)
        dying = await _dying(tg, stalled, client, processors=processors)
        async with Runner(
            client, broker, lease_ttl=_LEASE, takeover=True, processors=processors
        ) as successor:
            rid = await _start(dying)
            reader = _Reader(broker, rid)
            tg.start_soon(reader.run)
            with anyio.fail_after(30):
                await reader.done.wait()
            await successor.wait(rid)
        whole = await _whole(client, rid)
        stalled.wake()
        tg.cancel_scope.cancel()
    events = reader.events
    outcomes = [(e.container_id, e.file_id, e.path) for e in events if isinstance(e, _FILES)]
    assert outcomes
    assert len(outcomes) == len(set(outcomes))
    cursors = [ev.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(set(cursors))
    assert [e.type for e in events if not isinstance(e, _FILES)] == [e.type for e in whole]


_FILES = (ev.FileSaved, ev.FileFailed)


# -- runners that share a name ------------------------------------------------------------


async def test_a_watcher_never_takes_a_live_response_from_a_runner_of_the_same_name() -> None:
    # Two replicas configured alike (owner="worker" in both): a lease names its owner, and
    # the same owner may claim its own lease again, but not take a response another runner
    # of that name is producing.
    async with (
        _broker() as broker,
        _api(pace=0.01) as (mock, client),
        Runner(client, broker, lease_ttl=_LIVE_LEASE, owner="worker") as producing,
        Runner(client, broker, lease_ttl=_LIVE_LEASE, owner="worker", takeover=True),
    ):
        rid = await _start(producing)
        events = await _read_all(broker, rid)
        await producing.wait(rid)
        assert _replays(mock, rid) == 0
        assert _json(events) == _json(await _whole(client, rid))


# -- slow, not dead; leaving in the middle of a continuation -----------------------------


async def test_a_slow_producer_whose_lease_lapsed_stops_and_its_successor_writes_once() -> None:
    async with _broker() as broker, _api() as (_, client), anyio.create_task_group() as tg:
        stalled = Stalled(broker, 25)
        dying = await _dying(tg, stalled, client)
        rid = await _start(dying)
        with anyio.fail_after(30):
            await stalled.dead.wait()
        await anyio.sleep(3 * _LEASE)  # its lease lapses while nobody is watching
        stalled.wake()  # it was only slow: its next publish and renewal are refused
        with anyio.fail_after(30):
            await dying.wait(rid)
        status = await broker.status(rid)
        assert status is not None
        assert not status.ended
        assert status.owner is None
        async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as successor:
            events = await _read_all(broker, rid)
            await successor.wait(rid)
        tg.cancel_scope.cancel()
        assert _json(events) == _json(await _whole(client, rid))


async def test_a_successor_that_leaves_mid_continuation_hands_it_on() -> None:
    async with _broker() as broker, _api(pace=0.01) as (mock, client):
        async with anyio.create_task_group() as tg:
            stalled = Stalled(broker, 15)
            dying = await _dying(tg, stalled, client)
            rid = await _start(dying)
            reader = _Reader(broker, rid)
            tg.start_soon(reader.run)
            async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as leaving:
                with anyio.fail_after(30):
                    while len(reader.events) < 60 or rid not in leaving.running():
                        await anyio.sleep(0.01)
            async with Runner(client, broker, lease_ttl=_LEASE, takeover=True) as last:
                with anyio.fail_after(30):
                    await reader.done.wait()
                await last.wait(rid)
            stalled.wake()
            tg.cancel_scope.cancel()
        assert _replays(mock, rid) == 2
        assert _json(reader.events) == _json(await _whole(client, rid))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(3, 400),
    per_sequence=st.integers(1, 4),
    max_events=st.integers(5, 50),  # more than the events of one sequence number
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_a_replay_of_what_any_trimmed_log_holds_publishes_nothing_again(
    n: int, per_sequence: int, max_events: int, backend: str
) -> None:
    # Whatever the log kept of a response, the successor finds where it ends (by
    # bisection, when it was trimmed): the events the log had are all dropped from the
    # replay, and the first one after them goes on with its own cursor.
    events = make_events(n, per_sequence=per_sequence)
    logged, after = events[:-2], events[-2]

    async def check() -> None:
        async with _broker(max_events=max_events) as broker:
            for event in logged:  # one at a time, as a runner does: the log trims as it goes
                await broker.publish([event])
            status = await broker.status(logged[0].response_id)
            assert status is not None
            assert status.last_cursor is not None
            continuation = await _Continuation.read(
                broker, logged[0].response_id, status.last_cursor
            )
        assert [continuation.place(e) for e in logged] == [None] * len(logged)
        assert continuation.place(after) == after

    anyio.run(check, backend=backend)
