"""MemoryBroker.orphans: the unfinished responses no producer holds, in one look (what a
Runner with takeover=True claims)."""

from __future__ import annotations

import pytest

from respflow import MemoryBroker
from respflow.testing import make_events

pytestmark = pytest.mark.anyio


async def test_orphans_are_the_unfinished_responses_whose_lease_lapsed_or_was_given_up() -> None:
    now = [0.0]
    broker = MemoryBroker(clock=lambda: now[0])
    leases = {}
    for rid in ("resp_held", "resp_released", "resp_lapsing", "resp_ended"):
        lease = await broker.claim(rid, "producer", 10)
        assert lease is not None
        leases[rid] = lease
        events = make_events(4, response_id=rid)
        await broker.publish(events if rid == "resp_ended" else events[:2], lease=lease)
    await broker.release(leases["resp_released"])
    await broker.publish(make_events(4, response_id="resp_unleased")[:2])
    now[0] += 5
    leases["resp_held"] = await broker.renew(leases["resp_held"], 10)
    now[0] += 6  # resp_lapsing's lease ran out; resp_held's was renewed
    assert set(await broker.unfinished()) == {
        "resp_held",
        "resp_released",
        "resp_lapsing",
        "resp_unleased",
    }
    assert set(await broker.orphans()) == {"resp_released", "resp_lapsing", "resp_unleased"}
