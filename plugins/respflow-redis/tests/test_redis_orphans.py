"""RedisBroker's index of unfinished responses, read in one look: ``unfinished`` keeps its
contract, ``orphans`` gives those no producer holds (what a takeover claims), and stale
entries leave the index, however many entries it has."""

from __future__ import annotations

import pytest
from respflow_redis import RedisBroker

from respflow.testing import make_events

pytestmark = pytest.mark.anyio


async def test_unfinished_and_orphans_tell_live_held_ended_and_stale_apart(
    redis_url: str, prefix: str, anyio_backend: str
) -> None:
    async with RedisBroker(redis_url, prefix=prefix) as broker:
        held = make_events(4, response_id="resp_held")
        lease = await broker.claim("resp_held", "alive", 60)
        assert lease is not None
        await broker.publish(held[:2], lease=lease)
        orphan = make_events(4, response_id="resp_orphan")
        dead = await broker.claim("resp_orphan", "dead", 60)
        assert dead is not None
        await broker.publish(orphan[:2], lease=dead)
        await broker.release(dead)
        await broker.publish(make_events(4, response_id="resp_ended"))
        index = f"{prefix}unfinished"
        commands = broker._client()
        # Indexed, claimed, its first publish not yet written: it is kept, not listed.
        writing = await broker.claim("resp_writing", "alive", 60)
        assert writing is not None
        await commands.hset(index, {"resp_writing": b"1", "resp_never_written": b"0"})

        assert await broker.unfinished() == {"resp_held": False, "resp_orphan": False}
        assert await broker.orphans() == {"resp_orphan": False}
        assert set(await commands.hkeys(index)) == {b"resp_held", b"resp_orphan", b"resp_writing"}


async def test_an_index_longer_than_a_page_is_read_whole(
    redis_url: str, prefix: str, anyio_backend: str
) -> None:
    async with RedisBroker(redis_url, prefix=prefix) as broker:
        rids = [f"resp_many_{n}" for n in range(1_234)]
        for rid in rids:
            await broker.publish(make_events(4, response_id=rid)[:2])
        held = await broker.claim(rids[7], "alive", 60)
        assert held is not None
        found = await broker.orphans()
        assert set(found) == set(rids) - {rids[7]}
        assert set(await broker.unfinished()) == set(rids)
