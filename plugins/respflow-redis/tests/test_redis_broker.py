"""What RedisBroker promises beyond the Broker contract, checked in a real redis-server:
trimming is reported, keys expire, memory is bounded, stale producers are fenced off,
the lowest cursors work, and readers get every event once through reconnects, cancelled
waits and dropped connections, on few connections."""

from __future__ import annotations

import contextlib
import gc
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import coredis
import pytest
from coredis.retry import NoRetryPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respflow_redis import RedisBroker, RedisSubscription, broker_from_url

from respflow import (
    Broker,
    ConnectionFailed,
    Event,
    LeaseLost,
    ResponseCompleted,
    ResponseNotFound,
    StreamError,
    TextDelta,
    TooOld,
    UsageError,
)
from respflow.testing import make_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def raw(redis_url: str, anyio_backend: str) -> AsyncIterator[coredis.Redis[bytes]]:
    """A plain client, to look at what the broker left in Redis."""
    async with coredis.Redis.from_url(redis_url) as client:
        yield client


def opened(redis_url: str, prefix: str, **options: Any) -> RedisBroker:
    return RedisBroker(redis_url, prefix=prefix, **options)


def keys_of(prefix: str, response_id: str) -> tuple[str, str, str]:
    base = f"{prefix}{{{response_id}}}"
    return f"{base}:log", f"{base}:last", f"{base}:lease"


def text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def cursors(events: list[Event]) -> list[str]:
    return [e.cursor for e in events]


def delta(response_id: str, cursor: str, text: str = "x") -> TextDelta:
    seq = int(cursor.rpartition("-")[0])
    return TextDelta(
        response_id, seq, cursor, item_id="msg", output_index=0, content_index=0, delta=text
    )


async def read_all(broker: RedisBroker, response_id: str, after: str | None = None) -> list[Event]:
    subscription = await broker.subscribe(response_id, after=after)
    with anyio.fail_after(10):
        return [event async for event in subscription]


async def wait_until_gone(raw: coredis.Redis[bytes], key: str) -> None:
    with anyio.fail_after(10):
        while await raw.exists([key]):
            await anyio.sleep(0.05)


async def connections(raw: coredis.Redis[bytes], name: str) -> list[dict[str, Any]]:
    return [dict(c) for c in await raw.client_list() if c.get("name") == name]


# -- trimming ---------------------------------------------------------------------------


async def test_a_trimmed_history_is_too_old_and_the_rest_is_still_read_exactly(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(1_000)
    rid = events[0].response_id
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix, max_events=50) as broker:
        for start in range(0, len(events), 10):
            await broker.publish(events[start : start + 10])
        info = await raw.xinfo_stream(log)
        assert info["entries-added"] == 1_000 > info["length"]
        oldest = text((await raw.xrange(log, count=1))[0].identifier)
        ms, _, k = oldest.partition("-")
        kept_from = cursors(events).index(f"{int(ms) - 2}-{k}")
        assert 0 < kept_from < len(events) - 50

        for after in (None, events[0].cursor, events[kept_from - 2].cursor):
            with pytest.raises(TooOld, match="no longer kept"):
                await broker.subscribe(rid, after=after)
        rest = await read_all(broker, rid, after=events[kept_from].cursor)
        assert rest == events[kept_from + 1 :]


async def test_a_reader_that_falls_behind_the_history_gets_too_old_not_a_gap(
    redis_url: str, prefix: str
) -> None:
    events = make_events(2_000)
    rid = events[0].response_id
    async with opened(redis_url, prefix, max_events=50, window=16, read_count=8) as broker:
        await broker.publish(events[:20])
        subscription = await broker.subscribe(rid)
        got = [await subscription.__anext__() for _ in range(20)]
        with anyio.move_on_after(0.2):  # caught up: it waits on the follower
            got.append(await subscription.__anext__())
        for start in range(20, len(events), 10):
            await broker.publish(events[start : start + 10])

        async def read_on() -> None:
            while True:
                got.append(await subscription.__anext__())

        with anyio.fail_after(10), pytest.raises(TooOld):
            await read_on()
        assert got == events[: len(got)]  # what it got has no hole: it ends in TooOld
        assert len(got) < len(events)


async def test_xlen_stays_within_max_events_and_a_node_of_slack(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    # MAXLEN ~ trims whole radix tree nodes: at most stream-node-max-entries (100) over.
    events = make_events(3_000)
    rid = events[0].response_id
    log, _, _ = keys_of(prefix, rid)
    lengths = []
    async with opened(redis_url, prefix, max_events=100) as broker:
        for start in range(0, len(events), 7):
            await broker.publish(events[start : start + 7])
            lengths.append(await raw.xlen(log))
        assert max(lengths) <= 100 + 100
        assert lengths[-1] >= 100
        rest = await read_all(broker, rid, after=events[-60].cursor)
        assert rest == events[-59:]


# -- lifetimes --------------------------------------------------------------------------


async def test_keys_live_keep_running_while_running_and_keep_after_end_after(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(10)
    rid = events[0].response_id
    log, last, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix, keep_running=900, keep_after_end=1) as broker:
        await broker.publish(events[:5])
        for key in (log, last):
            assert 800 < await raw.ttl(key) <= 900
        await broker.publish(events[5:])
        for key in (log, last):
            assert 0 < await raw.ttl(key) <= 1
        assert await read_all(broker, rid) == events
        await wait_until_gone(raw, log)
        with pytest.raises(ResponseNotFound, match="unknown, or it expired"):
            await broker.subscribe(rid)
        assert await broker.status(rid) is None


async def test_a_response_whose_producer_died_expires_and_its_waiting_reader_is_told(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(10)
    rid = events[0].response_id
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix, keep_running=1, block=0.1) as broker:
        await broker.publish(events[:4])  # and then nothing: the producer is gone
        subscription = await broker.subscribe(rid)
        got = [await subscription.__anext__() for _ in range(4)]
        assert got == events[:4]
        with anyio.fail_after(10), pytest.raises(ResponseNotFound):
            await subscription.__anext__()
        await wait_until_gone(raw, log)
        with pytest.raises(ResponseNotFound):
            await broker.subscribe(rid)


async def test_renewing_a_lease_keeps_a_silent_running_response(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(6)
    rid = events[0].response_id
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix, keep_running=2) as broker:
        lease = await broker.claim(rid, "worker", ttl=5)
        assert lease is not None
        await broker.publish(events[:2], lease=lease)
        for _ in range(8):  # code runs for longer than keep_running, printing nothing
            await anyio.sleep(0.4)
            lease = await broker.renew(lease, ttl=5)
        assert await raw.exists([log])
        assert await broker.publish(events[2:], lease=lease) == 4
        assert await read_all(broker, rid) == events


# -- fencing ----------------------------------------------------------------------------


async def test_a_stale_producer_is_refused_after_another_claims_and_writes_nothing(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(12)
    rid = events[0].response_id
    log, _, lease_key = keys_of(prefix, rid)
    # The stale producer made other events in the same cursor range (its downloads
    # finished at other times): none of them may reach a reader.
    stale = [delta(rid, e.cursor, "stale") for e in events[4:8]]
    async with opened(redis_url, prefix) as first, opened(redis_url, prefix) as second:
        old = await first.claim(rid, "worker-a", ttl=0.2)
        assert old is not None
        assert await first.publish(events[:4], lease=old) == 4
        await wait_until_gone(raw, lease_key)  # worker-a stalls; its lease lapses
        with pytest.raises(LeaseLost):  # nobody holds it now: still not worker-a's
            await first.publish(stale, lease=old)
        new = await second.claim(rid, "worker-b", ttl=30)
        assert new is not None
        assert new.token > old.token
        added = (await raw.xinfo_stream(log))["entries-added"]
        with pytest.raises(LeaseLost, match="no longer held"):
            await first.publish(stale, lease=old)
        assert (await raw.xinfo_stream(log))["entries-added"] == added
        with pytest.raises(LeaseLost):
            await first.renew(old, ttl=30)
        await first.release(old)  # releasing a lost lease frees nothing
        assert await first.claim(rid, "worker-a", ttl=30) is None
        assert await second.publish(events[4:], lease=new) == 8
        assert await read_all(first, rid) == events


async def test_the_same_owner_claiming_again_after_a_lapse_gets_a_new_token(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(6)
    rid = events[0].response_id
    _, _, lease_key = keys_of(prefix, rid)
    async with opened(redis_url, prefix) as broker:
        before = await broker.claim(rid, "worker", ttl=0.2)
        assert before is not None
        await wait_until_gone(raw, lease_key)
        after = await broker.claim(rid, "worker", ttl=30)
        assert after is not None
        assert after.token != before.token
        with pytest.raises(LeaseLost):
            await broker.publish(events, lease=before)
        assert await broker.publish(events, lease=after) == 6


async def test_a_lease_covers_its_own_response_only(redis_url: str, prefix: str) -> None:
    mine, theirs = make_events(4), make_events(4)
    async with opened(redis_url, prefix) as broker:
        lease = await broker.claim(mine[0].response_id, "worker", ttl=30)
        assert lease is not None
        with pytest.raises(LeaseLost):
            await broker.publish([*mine, *theirs], lease=lease)
        assert await broker.status(mine[0].response_id) is not None  # the claim, no events
        with pytest.raises(ResponseNotFound):
            await broker.subscribe(mine[0].response_id)
        with pytest.raises(ResponseNotFound):
            await broker.subscribe(theirs[0].response_id)


# -- cursors and ids --------------------------------------------------------------------


async def test_the_lowest_cursors_are_stored_as_valid_ids_and_resume_exactly(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    rid = f"resp_low_{uuid.uuid4().hex[:8]}"
    events: list[Event] = [delta(rid, c) for c in ("-1-0", "-1-1", "0-0", "0-1", "1-0", "1-1")]
    events.append(ResponseCompleted(rid, 2, "2-0", status="completed"))
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix) as broker:
        assert await broker.publish(events) == 7
        ids = [text(entry.identifier) for entry in await raw.xrange(log)]
        assert ids == ["1-0", "1-1", "2-0", "2-1", "3-0", "3-1", "4-0"]
        assert await read_all(broker, rid) == events
        for k, event in enumerate(events):
            assert await read_all(broker, rid, after=event.cursor) == events[k + 1 :]
        assert await read_all(broker, rid, after="-9-3") == events
        assert await read_all(broker, rid, after=f"{2**70}-{2**70}") == []
        status = await broker.status(rid)
        assert status is not None
        assert status.last_cursor == "2-0"


async def test_a_cursor_respflow_never_makes_is_refused_before_anything_is_written(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    rid = f"resp_bad_{uuid.uuid4().hex[:8]}"
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix) as broker:
        for bad in ("-2-0", f"{2**64}-0", f"1-{2**64}"):
            with pytest.raises(UsageError, match="cannot store"):
                await broker.publish([delta(rid, "1-0"), delta(rid, bad)])
        assert not await raw.exists([log])
        with pytest.raises(ValueError, match="not a respflow cursor"):
            await broker.subscribe(rid, after="yesterday")


async def test_response_ids_with_braces_keep_their_keys_apart_and_in_one_slot(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    ids = ["resp_{a}", "resp_%7Ba%7D", "}resp", "resp_{", "resp_%"]
    async with opened(redis_url, prefix) as broker:
        for rid in ids:
            await broker.publish(make_events(3, response_id=rid))
        for rid in ids:
            assert await read_all(broker, rid) == make_events(3, response_id=rid)
        keys = sorted(k.decode() for k in await raw.keys(f"{prefix}*") if b"{" in k)
        assert len(keys) == 2 * len(ids)  # a log and a last each, no two ids sharing
        tags: dict[str, set[str]] = {}
        for key in keys:
            tag = key[key.index("{") + 1 : key.index("}", key.index("{"))]
            assert tag  # an empty tag would hash the whole key: keys in other slots
            tags.setdefault(key.rpartition(":")[0], set()).add(tag)
        assert all(len(found) == 1 for found in tags.values())


async def test_an_entry_that_is_not_an_event_is_a_stream_error_in_its_place(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    rid = f"resp_junk_{uuid.uuid4().hex[:8]}"
    events: list[Event] = [delta(rid, "0-0"), delta(rid, "5-0")]
    events.append(ResponseCompleted(rid, 6, "6-0", status="completed"))
    log, _, _ = keys_of(prefix, rid)
    async with opened(redis_url, prefix) as broker:
        await broker.publish(events[:1])
        await raw.xadd(log, {"e": b"{not json"}, identifier="4-0")  # not respflow's
        await broker.publish(events[1:])
        got = await read_all(broker, rid)
        assert got[0] == events[0]
        assert isinstance(got[1], StreamError)
        assert (got[1].code, got[1].cursor, got[1].fatal) == (
            "unreadable_broker_entry",
            "2-0",
            False,
        )
        assert got[2:] == events[1:]


# -- readers: cancelled waits, few connections, any pattern -------------------------------


async def test_a_cancelled_wait_loses_nothing_and_keeps_its_connection(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(8)
    rid = events[0].response_id
    name = f"rf-{uuid.uuid4().hex[:8]}"
    async with opened(redis_url, prefix, client_options={"client_name": name}) as broker:
        await broker.publish(events[:2])
        subscription = await broker.subscribe(rid)
        got = [await subscription.__anext__(), await subscription.__anext__()]
        for _ in range(5):  # heartbeats: each wait is abandoned
            with anyio.move_on_after(0.05):
                got.append(await subscription.__anext__())
        before = {c["id"] for c in await connections(raw, name)}
        for _ in range(5):
            with anyio.move_on_after(0.05):
                got.append(await subscription.__anext__())
        assert {c["id"] for c in await connections(raw, name)} == before
        await broker.publish(events[2:])
        with anyio.fail_after(10):
            got += [event async for event in subscription]
        assert got == events


async def test_connections_dropped_while_readers_wait_lose_nothing(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(12)
    rid = events[0].response_id
    name = f"rf-{uuid.uuid4().hex[:8]}"
    got: list[Event] = []
    # No retries inside coredis: the follower itself must get over the dropped XREAD.
    options = {"client_name": name, "retry_policy": NoRetryPolicy()}
    async with (
        opened(redis_url, prefix) as producer,
        opened(redis_url, prefix, client_options=options) as broker,
    ):
        await producer.publish(events[:2])
        subscription = await broker.subscribe(rid)

        async def read() -> None:
            got.extend([event async for event in subscription])

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for start in (2, 6):
                with anyio.fail_after(10):  # the reader waits in its follower's XREAD
                    while not any(c["cmd"] == "xread" for c in await connections(raw, name)):
                        await anyio.sleep(0.02)
                for client in await connections(raw, name):  # Redis drops them all
                    await raw.client_kill(identifier=int(client["id"]))
                await producer.publish(events[start : start + 4])
            await producer.publish(events[10:])
    assert got == events


async def test_many_readers_of_a_response_share_one_blocking_connection(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    events = make_events(30)
    rid = events[0].response_id
    name = f"rf-{uuid.uuid4().hex[:8]}"
    results: list[list[str]] = []
    async with opened(redis_url, prefix, client_options={"client_name": name}) as broker:
        await broker.publish(events[:1])

        async def read() -> None:
            results.append(cursors(await read_all(broker, rid)))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(read)
            with anyio.fail_after(10):
                while not any(c["cmd"] == "xread" for c in await connections(raw, name)):
                    await anyio.sleep(0.02)
            assert len(await connections(raw, name)) <= 2  # commands + one follower
            for start in range(1, len(events), 5):
                await broker.publish(events[start : start + 5])
    assert results == [cursors(events)] * 50


async def evals(raw: coredis.Redis[bytes]) -> int:
    """How many scripts the server has run (each page read is one)."""
    stats = (await raw.info("commandstats")).get("cmdstat_eval")
    return int(stats["calls"]) if isinstance(stats, dict) else 0


async def test_readers_above_and_at_the_top_wait_without_polling_and_get_what_is_theirs(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes]
) -> None:
    rid = f"resp_ahead_{uuid.uuid4().hex[:8]}"
    events: list[Event] = [delta(rid, f"{seq}-0") for seq in range(4)]
    later = [delta(rid, "10-0"), delta(rid, "60-0")]
    end = ResponseCompleted(rid, 61, "61-0", status="completed")
    async with opened(redis_url, prefix) as broker:
        await broker.publish(events)
        ahead = await broker.subscribe(rid, after="50-0")  # a cursor past the top
        at_top = await broker.subscribe(rid, after=events[-1].cursor)
        got: dict[str, list[Event]] = {"ahead": [], "at_top": []}

        async def read(name: str, subscription: RedisSubscription) -> None:
            got[name] += [event async for event in subscription]

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, "ahead", ahead)
            await anyio.sleep(0.1)  # the reader past the top starts following first
            tg.start_soon(read, "at_top", at_top)
            await anyio.sleep(0.1)
            before = await evals(raw)
            await anyio.sleep(0.5)
            assert await evals(raw) - before <= 2  # waiting, not asking again and again
            with anyio.fail_after(10):
                await broker.publish([*later, end])
    assert got == {"ahead": [later[1], end], "at_top": [*later, end]}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(2, 80),
    cuts=st.lists(st.integers(1, 79), max_size=8),
    readers=st.lists(
        st.tuples(
            st.lists(st.integers(1, 80), max_size=3),  # events read before reconnecting
            st.lists(st.integers(0, 80), max_size=3),  # events after which a wait times out
        ),
        min_size=1,
        max_size=3,
    ),
    kills=st.lists(st.integers(0, 8), max_size=2),  # batches after which Redis drops us
)
async def test_every_reader_gets_every_event_once_in_order_through_anything(
    redis_url: str,
    raw: coredis.Redis[bytes],
    n: int,
    cuts: list[int],
    readers: list[tuple[list[int], list[int]]],
    kills: list[int],
) -> None:
    events = make_events(n)
    rid = events[0].response_id
    prefix = f"rftest:{uuid.uuid4().hex[:12]}:"
    name = f"rf-{uuid.uuid4().hex[:8]}"
    bounds = sorted({0, n, *(c for c in cuts if c < n)})
    seen: list[list[str]] = [[] for _ in readers]
    options: dict[str, Any] = {"client_options": {"client_name": name}, "block": 0.5}
    async with (
        opened(redis_url, prefix, **options) as producer,
        opened(redis_url, prefix, **options) as other,
    ):
        await producer.publish(events[: bounds[1]])

        async def reader(number: int, quotas: list[int], timeouts: list[int]) -> None:
            after: str | None = None
            quotas, timeouts = list(quotas), sorted(timeouts)
            while True:
                subscription = await other.subscribe(rid, after=after)
                quota = quotas.pop(0) if quotas else None
                while quota != 0:
                    if timeouts and timeouts[0] <= len(seen[number]):
                        timeouts.pop(0)
                        with anyio.move_on_after(0.01):  # a heartbeat cuts the wait short
                            try:
                                event = await subscription.__anext__()
                            except StopAsyncIteration:
                                return
                            seen[number].append(after := event.cursor)
                            quota = None if quota is None else quota - 1
                        continue
                    try:
                        event = await subscription.__anext__()
                    except StopAsyncIteration:
                        return
                    seen[number].append(after := event.cursor)
                    quota = None if quota is None else quota - 1
                await subscription.aclose()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for number, (quotas, timeouts) in enumerate(readers):
                    tg.start_soon(reader, number, quotas, timeouts)
                for batch, (start, stop) in enumerate(itertools.pairwise(bounds[1:])):
                    await anyio.sleep(0)
                    if batch in kills:
                        for client in await connections(raw, name):
                            await raw.client_kill(identifier=int(client["id"]))
                    await producer.publish(events[start:stop])
    assert seen == [cursors(events)] * len(readers)


# -- set-up -----------------------------------------------------------------------------


# coredis (6.9) makes a connection's internal streams before connecting and closes them
# only once connected: a refused attempt leaves them to the garbage collector, which warns
# (ResourceWarning) whenever it runs. Ignored during this test, and collected before it
# ends, so the warning cannot land in another test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_an_unreachable_redis_is_connection_failed_and_the_password_stays_hidden(
    anyio_backend: str,
) -> None:
    with socket_that_refuses() as port:
        broker = RedisBroker(f"redis://:hunter2@127.0.0.1:{port}/0")
        assert "hunter2" not in repr(broker)
        with pytest.raises(ConnectionFailed) as failure:
            async with broker:
                pass
    message = str(failure.value)
    assert "hunter2" not in message
    assert "redis://:***@127.0.0.1" in message
    del failure  # its traceback holds the connections
    gc.collect()


def test_brokers_are_found_by_url_scheme_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {point.name: point.load() for point in entry_points(group="respflow.brokers")}
    assert found["redis"] is found["rediss"] is found["unix"] is broker_from_url
    broker = found["redis"]("redis://localhost:6390/2", max_events=5, keep_after_end=9)
    assert isinstance(broker, RedisBroker)
    assert isinstance(broker, Broker)
    assert (broker.max_events, broker.keep_after_end) == (5, 9)
    assert isinstance(broker_from_url("unix:///run/redis.sock?db=1"), RedisBroker)
    with pytest.raises(UsageError, match="not a Redis URL"):
        broker_from_url("http://:secret@localhost:6379")
    with pytest.raises(UsageError, match="does not take"):
        broker_from_url("redis://localhost", max_event=5)
    with pytest.raises(UsageError):
        broker_from_url("redis://localhost", max_events=0)


async def test_the_broker_is_used_inside_its_async_with(redis_url: str, prefix: str) -> None:
    broker = opened(redis_url, prefix)
    with pytest.raises(UsageError, match="async with"):
        await broker.publish(make_events(2))
    async with broker:
        await broker.publish(make_events(2))
    with pytest.raises(UsageError, match="closed"):
        await broker.publish(make_events(2))


async def test_an_error_in_the_broker_s_block_comes_out_as_itself(
    redis_url: str, prefix: str
) -> None:
    # coredis clients are task groups, which wrap what leaves them in exception groups.
    async def fail_inside() -> None:
        async with opened(redis_url, prefix) as broker:
            await broker.publish(make_events(2))
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await fail_inside()


async def test_closing_the_broker_ends_its_waiting_readers(redis_url: str, prefix: str) -> None:
    events = make_events(6)
    rid = events[0].response_id
    got: list[Event] = []
    async with opened(redis_url, prefix) as broker:
        await broker.publish(events[:2])
        subscription = await broker.subscribe(rid)

        async def read() -> None:
            got.extend([event async for event in subscription])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.sleep(0.1)  # it waits on the follower's XREAD
                await broker.aclose()
    assert got == events[:2]


@contextlib.contextmanager
def socket_that_refuses() -> Any:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]
