"""A hub reader's ``ready``: the events there are now, without waiting, exactly those its
``__anext__`` would give one by one, and nothing when it is to be let go."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import respflow
from respflow import Hub, Lagged
from respflow import _events as ev

RID = "resp_ready"


def _events(count: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.ResponseStarted(RID, 0, "0-0")]
    events += [ev.TextDelta(RID, n, f"{n}-0", "m", 0, 0, f"{n} ") for n in range(1, count + 1)]
    return [*events, ev.ResponseCompleted(RID, count + 1, f"{count + 1}-0")]


async def _read_mixed(reader: respflow.Reader, limits: list[int]) -> list[ev.Event]:
    """Everything ``reader`` gives, taking ``ready(limit)`` for each limit in turn and
    one ``__anext__`` whenever that gives nothing."""
    got: list[ev.Event] = []
    turn = 0
    while True:
        batch = reader.ready(limits[turn % len(limits)]) if limits else []
        turn += 1
        got += batch
        if not batch:
            try:
                got.append(await reader.__anext__())
            except StopAsyncIteration:
                return got


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 60),
    history=st.integers(5, 40),
    after=st.integers(-1, 60),
    limits=st.lists(st.integers(1, 20), max_size=6),
)
def test_ready_and_anext_give_the_same_events(
    count: int, history: int, after: int, limits: list[int]
) -> None:
    events = _events(count)

    async def run() -> None:
        hub = Hub(history=history)
        for event in events:
            await hub.send(event)
        cursor = events[after].cursor if 0 <= after < len(events) else None
        try:
            one_by_one = [e async for e in hub.subscribe(RID, after=cursor)]
        except respflow.TooOld:
            return
        mixed = await _read_mixed(hub.subscribe(RID, after=cursor), limits)
        assert mixed == one_by_one

    anyio.run(run)


@pytest.mark.anyio
async def test_a_reader_to_be_let_go_gets_nothing_ready_and_then_hears_why() -> None:
    hub = Hub(max_lag=5)
    events = _events(20)
    await hub.send(events[0])
    reader = hub.subscribe(RID)
    assert reader.ready(10) == [events[0]]
    for event in events[1:10]:
        await hub.send(event)
    assert reader.ready(10) == []
    with pytest.raises(Lagged):
        await reader.__anext__()


@pytest.mark.anyio
async def test_nothing_is_ready_before_the_response_comes_or_after_its_end() -> None:
    hub = Hub()
    reader = hub.subscribe(RID)
    assert reader.ready(10) == []
    events = _events(3)
    for event in events:
        await hub.send(event)
    assert reader.ready(2) == events[:2]
    assert reader.ready(10) == events[2:]
    assert reader.ready(10) == []
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()
