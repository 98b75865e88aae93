"""The promises every :class:`respflow.Broker` keeps, as tests any broker can run.

Subclass :class:`BrokerConformance` in a test module and say how to open your broker;
pytest (with anyio's plugin) collects the inherited tests::

    class TestMyBroker(BrokerConformance):
        @contextlib.asynccontextmanager
        async def open_broker(self, *, max_events, keep_after_end):
            broker = MyBroker(url, max_events=max_events, keep_after_end=keep_after_end)
            try:
                yield broker
            finally:
                await broker.aclose()

Brokers that many processes share override :meth:`BrokerConformance.another_client` to
open a second connection to the same store, so resuming is tested across clients.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .. import _events as ev
from .._delivery.broker import Broker
from .._exceptions import LeaseLost, ResponseNotFound, TooOld

__all__ = ["BrokerConformance", "make_events"]

_ids = itertools.count(1)


def make_events(n: int, *, response_id: str | None = None, per_sequence: int = 2) -> list[ev.Event]:
    """A response of ``n`` events (at least 2): started, text deltas, completed.

    ``per_sequence`` events share each sequence number, as the Assembler's do when one
    wire event yields several, so cursors ``<seq>-<k>`` with ``k > 0`` are exercised.
    """
    assert n >= 2
    rid = response_id or f"resp_conformance_{next(_ids)}"
    events: list[ev.Event] = [ev.ResponseStarted(rid, 0, "0-0", model="m")]
    for i in range(1, n - 1):
        seq, k = divmod(i - 1, per_sequence)
        events.append(
            ev.TextDelta(
                rid,
                seq + 1,
                f"{seq + 1}-{k}",
                item_id="msg",
                output_index=0,
                content_index=0,
                delta=f"{i} ",
            )
        )
    last = events[-1].sequence_number + 1
    events.append(ev.ResponseCompleted(rid, last, f"{last}-0", status="completed"))
    return events


def _cursors(events: Sequence[ev.Event]) -> list[str]:
    return [e.cursor for e in events]


async def _read(broker: Broker, response_id: str, after: str | None = None) -> list[ev.Event]:
    subscription = await broker.subscribe(response_id, after=after)
    with anyio.fail_after(10):
        return [event async for event in subscription]


class BrokerConformance:
    """Tests of the :class:`respflow.Broker` contract; subclass and define
    :meth:`open_broker`."""

    pytestmark = pytest.mark.anyio

    def open_broker(
        self, *, max_events: int = 1_000, keep_after_end: float = 60.0
    ) -> contextlib.AbstractAsyncContextManager[Broker]:
        """An empty broker with these limits, closed on exit."""
        raise NotImplementedError("subclasses say how to open their broker")

    def another_client(self, broker: Broker) -> contextlib.AbstractAsyncContextManager[Broker]:
        """A second client of the same store (another process's view); the same object
        for a broker that lives in one process."""

        @contextlib.asynccontextmanager
        async def same() -> AsyncIterator[Broker]:
            yield broker

        return same()

    # -- reading what was published -----------------------------------------------------

    async def test_a_reader_gets_every_event_in_order_and_stops_at_the_end(self) -> None:
        events = make_events(20)
        async with self.open_broker() as broker:
            assert await broker.publish(events[:7]) == 7
            assert await broker.publish(events[7:]) == 13
            assert _cursors(await _read(broker, events[0].response_id)) == _cursors(events)
            assert await _read(broker, events[0].response_id) == events

    async def test_resuming_after_any_cursor_gives_exactly_the_rest(self) -> None:
        events = make_events(12)
        rid = events[0].response_id
        async with self.open_broker() as broker:
            await broker.publish(events)
            async with self.another_client(broker) as other:
                for k, event in enumerate(events):
                    rest = await _read(other, rid, after=event.cursor)
                    assert _cursors(rest) == _cursors(events[k + 1 :])

    async def test_a_reader_waits_for_events_published_later(self) -> None:
        events = make_events(30)
        rid = events[0].response_id
        got: list[ev.Event] = []
        async with self.open_broker() as broker:
            await broker.publish(events[:1])
            async with self.another_client(broker) as other:
                subscription = await other.subscribe(rid, after=events[0].cursor)

                async def read() -> None:
                    async for event in subscription:
                        got.append(event)

                with anyio.fail_after(10):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(read)
                        for start in range(1, len(events), 4):
                            await anyio.sleep(0.01)
                            await broker.publish(events[start : start + 4])
        assert _cursors(got) == _cursors(events[1:])

    async def test_many_readers_of_one_response_each_get_all_of_it(self) -> None:
        events = make_events(40)
        rid = events[0].response_id
        results: list[list[str]] = []
        async with self.open_broker() as broker:
            await broker.publish(events[:1])

            async def read() -> None:
                results.append(_cursors(await _read(broker, rid)))

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(read)
                    for event in events[1:]:
                        await broker.publish([event])
        assert results == [_cursors(events)] * 5

    # -- idempotence and the end --------------------------------------------------------

    async def test_publishing_again_duplicates_nothing(self) -> None:
        events = make_events(10)
        async with self.open_broker() as broker:
            assert await broker.publish(events[:6]) == 6
            assert await broker.publish(events[:4]) == 0  # a restarted producer's replay
            assert await broker.publish(events[3:8]) == 2
            assert await broker.publish(events) == 2
            assert await _read(broker, events[0].response_id) == events

    async def test_nothing_is_kept_after_a_response_ends(self) -> None:
        events = make_events(5)
        rid = events[0].response_id
        later = ev.TextDelta(
            rid, 99, "99-0", item_id="m", output_index=0, content_index=0, delta="late"
        )
        async with self.open_broker() as broker:
            await broker.publish(events)
            assert await broker.publish([later]) == 0
            assert await _read(broker, rid) == events
            status = await broker.status(rid)
            assert status is not None
            assert status.ended
            assert status.last_cursor == events[-1].cursor

    async def test_one_batch_may_carry_several_responses(self) -> None:
        one, two = make_events(6), make_events(6)
        mixed = [e for pair in zip(one, two, strict=True) for e in pair]
        async with self.open_broker() as broker:
            assert await broker.publish(mixed) == 12
            assert await _read(broker, one[0].response_id) == one
            assert await _read(broker, two[0].response_id) == two

    # -- what a broker no longer has ----------------------------------------------------

    async def test_an_unknown_response_is_not_found(self) -> None:
        async with self.open_broker() as broker:
            with pytest.raises(ResponseNotFound):
                await broker.subscribe("resp_never_published")
            assert await broker.status("resp_never_published") is None

    async def test_a_finished_response_expires(self) -> None:
        events = make_events(4)
        async with self.open_broker(keep_after_end=0.3) as broker:
            await broker.publish(events)
            assert await _read(broker, events[0].response_id) == events
            await anyio.sleep(1.5)
            with pytest.raises(ResponseNotFound):
                await broker.subscribe(events[0].response_id)

    async def test_a_cursor_older_than_the_history_is_too_old_never_skipped(self) -> None:
        events = make_events(200)
        rid = events[0].response_id
        async with self.open_broker(max_events=20) as broker:
            for start in range(0, len(events), 10):
                await broker.publish(events[start : start + 10])
            with pytest.raises(TooOld):
                await broker.subscribe(rid)
            with pytest.raises(TooOld):
                await broker.subscribe(rid, after=events[5].cursor)
            # The newest events are still there, to the end.
            rest = await _read(broker, rid, after=events[-5].cursor)
            assert _cursors(rest) == _cursors(events[-4:])

    # -- leases -------------------------------------------------------------------------

    async def test_of_two_claims_exactly_one_wins(self) -> None:
        rid = make_events(2)[0].response_id
        async with self.open_broker() as broker, self.another_client(broker) as other:
            won: list[Any] = []

            async def claim(client: Broker, owner: str) -> None:
                won.append(await client.claim(rid, owner, ttl=30))

            async with anyio.create_task_group() as tg:
                tg.start_soon(claim, broker, "worker-a")
                tg.start_soon(claim, other, "worker-b")
            leases = [lease for lease in won if lease is not None]
            assert len(leases) == 1
            status = await broker.status(rid)
            assert status is not None
            assert status.owner == leases[0].owner

    async def test_a_producer_that_lost_its_lease_cannot_publish(self) -> None:
        events = make_events(10)
        rid = events[0].response_id
        async with self.open_broker() as broker:
            stale = await broker.claim(rid, "worker-a", ttl=0.3)
            assert stale is not None
            assert await broker.publish(events[:3], lease=stale) == 3
            await anyio.sleep(0.8)  # worker-a stalls; its lease lapses
            successor = await broker.claim(rid, "worker-b", ttl=30)
            assert successor is not None
            with pytest.raises(LeaseLost):
                await broker.publish(events[3:6], lease=stale)
            with pytest.raises(LeaseLost):
                await broker.renew(stale, ttl=30)
            assert await broker.publish(events[3:], lease=successor) == 7
            assert await _read(broker, rid) == events

    async def test_a_renewed_lease_holds_and_a_released_one_can_be_claimed(self) -> None:
        rid = make_events(2)[0].response_id
        async with self.open_broker() as broker:
            lease = await broker.claim(rid, "worker-a", ttl=0.5)
            assert lease is not None
            for _ in range(3):
                await anyio.sleep(0.25)
                lease = await broker.renew(lease, ttl=0.5)
            assert await broker.claim(rid, "worker-b", ttl=30) is None
            await broker.release(lease)
            assert await broker.claim(rid, "worker-b", ttl=30) is not None

    # -- what the producers left unfinished ---------------------------------------------

    async def test_unfinished_lists_started_responses_until_they_end(self) -> None:
        # The index producer takeover watches: a response is in it from its first
        # event to its end, with whether the API could replay it to another producer.
        foreground = make_events(6)
        rid = foreground[0].response_id
        background = make_events(6)
        bid = background[0].response_id
        background[0] = ev.ResponseStarted(bid, 0, "0-0", model="m", background=True)
        async with self.open_broker() as broker:
            assert rid not in await broker.unfinished()
            await broker.publish(foreground[:3])
            await broker.publish(background[:2])
            unfinished = await broker.unfinished()
            assert unfinished[rid] is False
            assert unfinished[bid] is True
            await broker.publish(foreground[3:])
            assert rid not in await broker.unfinished()
            assert (await broker.unfinished())[bid] is True
            await broker.publish(background[2:])
            assert bid not in await broker.unfinished()

    async def test_a_lease_alone_is_not_an_unfinished_response(self) -> None:
        rid = make_events(2)[0].response_id
        async with self.open_broker() as broker:
            assert await broker.claim(rid, "worker-a", ttl=30) is not None
            assert rid not in await broker.unfinished()

    # -- any pattern of batches and reconnects ------------------------------------------

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        n=st.integers(2, 60),
        cuts=st.lists(st.integers(1, 59), max_size=6),
        drops=st.lists(st.integers(0, 59), max_size=4),
    )
    def test_readers_that_reconnect_see_each_event_once_in_order(
        self, anyio_backend: str, n: int, cuts: list[int], drops: list[int]
    ) -> None:
        # A plain test running its own event loop per example: hypothesis on an async
        # method is not something every anyio release's pytest plugin runs.
        anyio.run(self._reconnecting_readers, n, cuts, drops, backend=anyio_backend)

    async def _reconnecting_readers(self, n: int, cuts: list[int], drops: list[int]) -> None:
        events = make_events(n)
        rid = events[0].response_id
        bounds = sorted({0, n, *(c for c in cuts if c < n)})
        async with self.open_broker() as broker, self.another_client(broker) as other:
            await broker.publish(events[: bounds[1]])
            seen: list[str] = []

            async def reader() -> None:
                # Drops the connection after each count in `drops`, resumes from its cursor.
                after: str | None = None
                quotas = [d % n + 1 for d in drops]
                while True:
                    subscription = await other.subscribe(rid, after=after)
                    quota = quotas.pop(0) if quotas else None
                    async for event in subscription:
                        seen.append(event.cursor)
                        after = event.cursor
                        if quota is not None:
                            quota -= 1
                            if quota == 0:
                                break
                    else:
                        return
                    await subscription.aclose()

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(reader)
                    for start, stop in itertools.pairwise(bounds[1:]):
                        await anyio.sleep(0)
                        await broker.publish(events[start:stop])
            assert seen == _cursors(events)
