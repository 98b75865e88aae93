"""Attacks on takeover that only Redis can mount: the ``<prefix>unfinished`` index is a
hint kept beside the streams, so it can name responses whose streams expired or ended,
and it can be long; and runners are separate clients, as separate processes are."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
import pytest
from respflow_redis import RedisBroker

import respflow
from respflow import Broker, Lease, Runner
from respflow.testing import MockServer, Recording, Stalled, make_events

pytestmark = pytest.mark.anyio

# Long enough that a live producer renews in time on a loaded CI runner (a renewal later
# than the lease is, rightly, a dead producer's), short enough that watchers look often.
_LEASE = 1.0


class _Watched(Stalled):
    """A runner's view of the broker that counts its looks for orphans and its claims."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        self.looks = 0
        self.looked = anyio.Event()
        self.claims: list[str] = []

    async def unfinished(self) -> dict[str, bool]:
        found = await super().unfinished()
        self.looks += 1
        self.looked.set()
        self.looked = anyio.Event()
        return found

    async def claim(self, response_id: str, owner: str, ttl: float) -> Lease | None:
        self.claims.append(response_id)
        return await super().claim(response_id, owner, ttl)

    async def looks_again(self, times: int) -> None:
        """Until the watcher has looked ``times`` more times."""
        until = self.looks + times
        with anyio.fail_after(30):
            while self.looks < until:
                await self.looked.wait()


@contextlib.asynccontextmanager
async def _client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
    ) as client:
        yield client


def _recording() -> Recording:
    sample = respflow.__file__.replace("__init__.py", "samples/code_interpreter.sse")
    return Recording.from_file(sample)


async def test_stale_index_entries_are_dropped_and_never_claimed(
    redis_url: str, prefix: str
) -> None:
    async with (
        RedisBroker(redis_url, prefix=prefix) as broker,
        MockServer(_recording()) as mock,
        _client(mock) as client,
    ):
        ended = make_events(4, response_id="resp_ended")
        await broker.publish(ended)
        expired = make_events(4, response_id="resp_expired")[:2]
        await broker.publish(expired)
        commands = broker._client()
        keys = list(await commands.keys(f"{prefix}*resp_expired*"))
        await commands.delete(keys)  # its streams expired (keep_running) before anyone came
        await commands.hset(f"{prefix}unfinished", {"resp_never_written": b"1"})
        watched = _Watched(broker)
        async with Runner(client, watched, lease_ttl=_LEASE, takeover=True):
            await watched.looks_again(2)
        assert watched.claims == []
        assert await commands.hgetall(f"{prefix}unfinished") == {}
        assert await broker.unfinished() == {}


async def test_many_live_responses_are_left_to_their_producers(redis_url: str, prefix: str) -> None:
    async with (
        RedisBroker(redis_url, prefix=prefix) as broker,
        RedisBroker(redis_url, prefix=prefix) as theirs,
        MockServer(_recording()) as mock,
        _client(mock) as client,
    ):
        leases: dict[str, Lease] = {}
        for n in range(200):
            rid = f"resp_live_{n}"
            lease = await theirs.claim(rid, "worker", 60)
            assert lease is not None
            leases[rid] = lease
            await theirs.publish(make_events(6, response_id=rid)[:3], lease=lease)
        assert len(await broker.unfinished()) == 200
        watched = _Watched(broker)
        # The watcher has the live producers' name: a claim would succeed, a look must not.
        async with Runner(client, watched, lease_ttl=_LEASE, owner="worker", takeover=True):
            await watched.looks_again(2)
        assert watched.claims == []
        for lease in leases.values():
            await theirs.renew(lease, 60)  # each still held by the producer that claimed it
        assert len(await broker.unfinished()) == 200


async def test_a_same_named_replica_does_not_take_a_live_response(
    redis_url: str, prefix: str
) -> None:
    files = respflow.__file__.replace("__init__.py", "samples/files")
    async with (
        RedisBroker(redis_url, prefix=prefix) as broker,
        RedisBroker(redis_url, prefix=prefix) as theirs,
        MockServer(_recording(), files=files, pace=0.01, fresh_ids=True) as mock,
        _client(mock) as client,
        Runner(client, theirs, lease_ttl=_LEASE, owner="replica") as producing,
        Runner(client, broker, lease_ttl=_LEASE, owner="replica", takeover=True),
    ):
        rid = await producing.start(model="gpt-5", input="dice", background=True)
        with anyio.fail_after(30):
            events = [e async for e in await broker.subscribe(rid)]
        await producing.wait(rid)
    replays = [r for r in mock.requests if r.method == "GET" and r.path.endswith(rid)]
    assert replays == []
    assert isinstance(events[-1], respflow.ResponseCompleted)
    assert [e.cursor for e in events] == _unique(e.cursor for e in events)


def _unique(cursors: Any) -> list[str]:
    return list(dict.fromkeys(cursors))
