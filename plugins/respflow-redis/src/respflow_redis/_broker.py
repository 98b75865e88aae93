"""RedisBroker: respflow's Broker on Redis Streams, one stream per response.

Writes: each ``publish`` is one ``EVAL`` per response that checks the producer's lease,
skips what the stream already holds, ``XADD``s the rest and refreshes the keys' TTL, so a
stale producer can neither write nor duplicate anything.

Unfinished responses are indexed in one hash (``<prefix>unfinished``: response id to
``1`` for a background response, ``0`` otherwise), written when a ``response.started``
is published and cleared once its end is. It is a hint, kept outside the scripts because
it is not in the response's Cluster slot: ``unfinished`` checks each entry against the
response's own keys and drops the stale ones.

Reads: a subscription reads pages with a script that ``XRANGE``s after its position and
tells a trimmed history (``TooOld``) from an unknown one (``ResponseNotFound``). Each entry
holds its event (``e``) and the id of the entry before it (``p``): the oldest entry kept
names the newest trimmed one, so a reader exactly there is told it lost nothing. Once it
has caught up it waits on this process's *follower* of that response: one task, on one
connection of its own, that blocks in ``XREAD`` and shares what it reads with every local
reader through an in-memory window. A reader therefore never cancels a Redis command:
a heartbeat timeout only abandons a wait on an ``anyio.Event``, and the next call goes
on from the same position.
"""

from __future__ import annotations

import contextlib
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
import msgspec
from anyio.abc import TaskGroup
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import RedisError

from respflow import (
    END_TYPES,
    ConnectionFailed,
    Event,
    Lease,
    LeaseLost,
    LogStatus,
    ResponseNotFound,
    ResponseStarted,
    StreamError,
    TooOld,
    UsageError,
    decode_event,
    encode_event,
)

from . import _scripts
from ._ids import (
    OFFSET,
    ResponseKeys,
    StreamId,
    after_id,
    cursor_of,
    entry_id,
    format_id,
    parse_id,
    response_keys,
)

__all__ = ["RedisBroker", "RedisSubscription", "redacted"]

SCHEMES = ("redis", "rediss", "unix")
_INDEX_PAGE = 500
"""Entries of the unfinished index whose statuses go to Redis in one pipelined round trip."""


def redacted(url: str) -> str:
    """``url`` with its password replaced, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(slots=True)
class _Page:
    """What one read of a response's stream found."""

    state: Literal["ok", "missing", "trimmed"]
    last: StreamId | None = None
    """The id of the newest event stored."""
    ended: bool = False
    """The newest event stored is the response's end."""
    entries: list[tuple[StreamId, Event]] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Follower:
    """This process's watch on one response: a window of its newest events, shared by
    every local reader that has caught up, filled by one task blocking in ``XREAD``."""

    response_id: str
    start: StreamId
    """The window holds the events after this id ..."""
    end: StreamId
    """... up to and including this one (``start`` while empty)."""
    ids: list[StreamId] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    readers: int = 0
    running: bool = True
    ended: bool = False
    gone: bool = False
    error: RedisError | None = None
    """Why it stopped, if Redis refused what it asked (a lost connection is retried)."""
    grown: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    """Cancelled when the broker closes (its task group's scope also covers the body of
    the broker's ``async with``, so it cannot be the one cancelled)."""

    def after(self, position: StreamId) -> list[tuple[StreamId, Event]] | None:
        """The window's events after ``position``; ``None`` if it does not reach back there."""
        if position < self.start:
            return None
        i = bisect_right(self.ids, position)
        return list(zip(self.ids[i:], self.events[i:], strict=True))

    def add(self, entries: list[tuple[StreamId, Event]], keep: int) -> None:
        for stream_id, event in entries:
            self.ids.append(stream_id)
            self.events.append(event)
            self.ended = isinstance(event, END_TYPES)
        self.end = self.ids[-1]
        if len(self.ids) > 2 * keep:  # trimmed in steps, so adding stays O(1)
            cut = len(self.ids) - keep
            self.start = self.ids[cut - 1]
            del self.ids[:cut], self.events[:cut]

    def restart_at(self, stream_id: StreamId) -> None:
        """Forget the window: it fell behind what Redis keeps."""
        self.ids.clear()
        self.events.clear()
        self.start = self.end = stream_id

    def wake(self) -> None:
        self.grown.set()
        self.grown = anyio.Event()


class RedisBroker:
    """A :class:`respflow.Broker` on Redis Streams, shared by any number of processes.

    Use it as an async context manager: it holds the connections and the tasks that
    follow responses for its readers::

        async with RedisBroker("redis://localhost:6379/0") as broker:
            ...

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
            ``unix:///path/to/socket?db=0``. The password never appears in messages.
        prefix: put before every key, so several applications can share one database.
        max_events: events kept per response (``XADD ... MAXLEN ~``: Redis trims whole
            nodes, so a stream may hold up to ~100 more); a reader whose cursor falls
            below what is kept gets :class:`respflow.TooOld`.
        keep_running: seconds an unfinished response is kept after its last publish (or
            lease renewal); a producer that died leaves nothing behind for longer.
        keep_after_end: seconds a finished response stays readable.
        block: seconds a follower's ``XREAD BLOCK`` waits before it looks again whether
            anyone still reads (and whether the response expired).
        read_count: events read per round trip.
        window: events a follower keeps in memory for its readers.
        max_followed: responses this process can follow at once (each takes one
            connection while its readers wait).
        client_options: passed to ``coredis.Redis.from_url`` (``connect_timeout``,
            ``ssl_context``, ...).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "respflow:",
        max_events: int = 10_000,
        keep_running: float = 3_600.0,
        keep_after_end: float = 600.0,
        block: float = 5.0,
        read_count: int = 256,
        window: int = 1_024,
        max_followed: int = 1_000,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            raise UsageError(
                f"{redacted(url)!r} is not a Redis URL: use redis://host:port/db, "
                "rediss://... (TLS) or unix:///path/to/socket"
            )
        if "{" in prefix or "}" in prefix:
            raise UsageError("the key prefix may not hold { or }: they would move the hash tag")
        if min(max_events, read_count, window, max_followed) < 1:
            raise UsageError("max_events, read_count, window and max_followed must be at least 1")
        if not (keep_running >= 1 and keep_after_end >= 0 and block > 0):
            raise UsageError(
                "keep_running must be at least 1 second, keep_after_end at least 0, block above 0"
            )
        self.url = url
        self.prefix = prefix
        self.max_events = max_events
        self.keep_running = keep_running
        self.keep_after_end = keep_after_end
        self.block = block
        self.read_count = read_count
        self.window = window
        self.max_followed = max_followed
        self.client_options = dict(client_options or {})
        self._tokens_key = f"{prefix}lease-tokens"
        self._unfinished_key = f"{prefix}unfinished"
        self._commands: coredis.Redis[bytes] | None = None
        self._blocking: coredis.Redis[bytes] | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._group: TaskGroup | None = None
        self._followers: dict[str, _Follower] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBroker({redacted(self.url)!r}, prefix={self.prefix!r})"

    # -- life ---------------------------------------------------------------------------

    async def __aenter__(self) -> RedisBroker:
        if self._stack is not None or self._closed:
            raise UsageError("a RedisBroker is entered once; make a new one")
        options = {**self.client_options, "decode_responses": False}
        commands = coredis.Redis.from_url(self.url, **options)
        # Blocking reads hold their connection until they return; on a pool of their
        # own they can never starve publishes and page reads of connections.
        blocking = coredis.Redis.from_url(
            self.url, **{**options, "max_connections": self.max_followed}
        )
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(commands)
            await stack.enter_async_context(blocking)
            group = await stack.enter_async_context(anyio.create_task_group())
            try:
                await commands.get(self._tokens_key)  # a first command says if Redis answers
            except RedisError as exc:
                raise ConnectionFailed(
                    f"the Redis at {redacted(self.url)} did not answer: {exc}; check the "
                    "URL and that the server runs"
                ) from exc
        except BaseException as exc:
            await _unwind(stack, exc)
            raise
        self._commands, self._blocking, self._group, self._stack = commands, blocking, group, stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            if exc is None:
                await stack.aclose()
            else:
                await _unwind(stack, exc)  # and ``exc`` goes on as it came
        finally:
            self._commands = self._blocking = self._group = None

    async def aclose(self) -> None:
        """Ends every reader (after the events it already holds) and stops following;
        the connections close when the ``async with`` block ends."""
        self._closed = True
        for follower in self._followers.values():
            follower.scope.cancel()
            follower.wake()
        await anyio.lowlevel.checkpoint()

    def _client(self) -> coredis.Redis[bytes]:
        if self._commands is None:
            raise UsageError(
                "use the broker inside `async with RedisBroker(...) as broker:` "
                "(it holds the connections; a broker is entered once)"
            )
        return self._commands

    def _check_open(self) -> coredis.Redis[bytes]:
        if self._closed:
            raise UsageError("this broker was closed")
        return self._client()

    def _keys(self, response_id: str) -> ResponseKeys:
        return response_keys(self.prefix, response_id)

    # -- producers ----------------------------------------------------------------------

    async def publish(self, events: Sequence[Event], *, lease: Lease | None = None) -> int:
        client = self._check_open()
        batches: dict[str, list[Event]] = {}
        for event in events:
            batches.setdefault(event.response_id, []).append(event)
        if lease is not None and any(rid != lease.response_id for rid in batches):
            raise LeaseLost(
                f"the lease of {lease.owner} covers {lease.response_id} only; publish other "
                "responses' events under their own leases"
            )
        # Every cursor is checked before anything is written.
        prepared = [(rid, self._publish_args(batch, lease)) for rid, batch in batches.items()]
        appended = 0
        for rid, args in prepared:
            batch = batches[rid]
            # Indexed before the events are written: a producer that dies in between
            # leaves a stale entry (dropped later), never an unindexed response.
            started = next((e for e in batch if isinstance(e, ResponseStarted)), None)
            if started is not None:
                flag = b"1" if started.background else b"0"
                await client.hset(self._unfinished_key, {rid: flag})
            keys = self._keys(rid)
            result = await client.eval(_scripts.PUBLISH, [keys.log, keys.last, keys.lease], args)
            if result == -1:
                assert lease is not None
                raise _lease_lost(lease)
            appended += _int(result)
            if any(isinstance(e, END_TYPES) for e in batch):
                await client.hdel(self._unfinished_key, [rid])
        await anyio.lowlevel.checkpoint()
        return appended

    def _publish_args(self, batch: list[Event], lease: Lease | None) -> list[str | bytes]:
        args: list[str | bytes] = [
            _lease_value(lease) if lease is not None else "",
            str(self.max_events),
            str(_seconds(self.keep_running)),
            str(_seconds(self.keep_after_end)),
        ]
        for event in batch:
            ms, seq = entry_id(event.cursor)
            args += [str(ms), str(seq), encode_event(event)]
            args.append("1" if isinstance(event, END_TYPES) else "0")
        return args

    # -- leases -------------------------------------------------------------------------

    async def claim(self, response_id: str, owner: str, ttl: float) -> Lease | None:
        client = self._check_open()
        lasts = _milliseconds(ttl)
        expires_at = time.monotonic() + ttl
        token = await client.incr(self._tokens_key)
        lease = Lease(response_id, owner, token, expires_at)
        keys = self._keys(response_id)
        won = await client.eval(_scripts.CLAIM, [keys.lease], [_lease_value(lease), owner, lasts])
        return lease if won == 1 else None

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        client = self._check_open()
        lasts = _milliseconds(ttl)
        expires_at = time.monotonic() + ttl
        keys = self._keys(lease.response_id)
        renewed = await client.eval(
            _scripts.RENEW,
            [keys.lease, keys.log, keys.last],
            [_lease_value(lease), lasts, str(_seconds(self.keep_running))],
        )
        if renewed != 1:
            raise _lease_lost(lease)
        return Lease(lease.response_id, lease.owner, lease.token, expires_at)

    async def release(self, lease: Lease) -> None:
        keys = self._keys(lease.response_id)
        await self._client().eval(_scripts.RELEASE, [keys.lease], [_lease_value(lease)])

    # -- readers ------------------------------------------------------------------------

    async def status(self, response_id: str) -> LogStatus | None:
        keys = self._keys(response_id)
        last, lease = _list(await self._client().eval(_scripts.STATUS, [keys.last, keys.lease]))
        if last is None and lease is None:
            return None
        newest, ended = _parse_last(last)
        return LogStatus(
            response_id=response_id,
            last_cursor=None if newest is None else cursor_of(newest),
            ended=ended,
            owner=None if lease is None else _text(lease).partition(" ")[2],
        )

    async def unfinished(self) -> dict[str, bool]:
        return {rid: background for rid, background, _ in await self._indexed()}

    async def orphans(self) -> dict[str, bool]:
        """The unfinished responses whose lease no producer holds (see :meth:`unfinished`):
        what a :class:`respflow.Runner` with ``takeover=True`` claims, found in one look."""
        return {
            rid: background for rid, background, owner in await self._indexed() if owner is None
        }

    async def _indexed(self) -> list[tuple[str, bool, str | None]]:
        """The index's live entries, each with whether it is a background response and
        its lease's owner; stale entries are dropped from the index. One round trip for
        the index and one per page of its entries (their statuses, pipelined)."""
        client = self._check_open()
        index = await client.hgetall(self._unfinished_key)
        raw_ids = list(index)
        replies: list[Any] = []
        for start in range(0, len(raw_ids), _INDEX_PAGE):
            async with client.pipeline(transaction=False) as pipe:
                for raw_id in raw_ids[start : start + _INDEX_PAGE]:
                    keys = self._keys(_text(raw_id))
                    pipe.eval(_scripts.STATUS, [keys.last, keys.lease])
            replies += pipe.results or ()
        live: list[tuple[str, bool, str | None]] = []
        stale: list[str | bytes] = []
        for raw_id, reply in zip(raw_ids, replies, strict=True):
            last, lease = _list(reply)
            newest, ended = _parse_last(last)
            if ended or (last is None and lease is None):
                stale.append(raw_id)  # ended, expired, or never written
            elif newest is not None:  # (else it is being written: indexed first)
                owner = None if lease is None else _text(lease).partition(" ")[2]
                live.append((_text(raw_id), index[raw_id] == b"1", owner))
        if stale:
            await client.hdel(self._unfinished_key, stale)
        return live

    async def subscribe(self, response_id: str, *, after: str | None = None) -> RedisSubscription:
        self._check_open()
        position = after_id(after)
        page = await self._read(response_id, position)
        _raise_if_unreadable(page, response_id, f"after {after}" if after else "from its start")
        return RedisSubscription(self, response_id, position, page)

    async def _read(self, response_id: str, position: StreamId) -> _Page:
        keys = self._keys(response_id)
        reply = _list(
            await self._client().eval(
                _scripts.READ, [keys.log, keys.last], [format_id(position), self.read_count]
            )
        )
        if reply[0] == 0:
            return _Page("missing")
        last, ended = _parse_last(reply[1])
        if reply[0] == 2:
            return _Page("trimmed", last, ended)
        entries = [_decode_entry(response_id, raw) for raw in _list(reply[2])]
        return _Page("ok", last, ended, entries)

    def _follow(self, response_id: str, top: StreamId) -> _Follower:
        """This process's follower of the response, started at ``top`` if none runs.

        ``top`` is the newest id stored (or a reader's position, if lower): a follower
        started above it, at a cursor some reader gave from the future, would not reach
        back to readers at the top, and they would read for themselves in a loop.
        """
        follower = self._followers.get(response_id)
        if follower is None or not follower.running:
            assert self._group is not None
            follower = _Follower(response_id, start=top, end=top)
            self._followers[response_id] = follower
            self._group.start_soon(self._run_follower, follower)
        follower.readers += 1
        return follower

    async def _run_follower(self, follower: _Follower) -> None:
        try:
            with follower.scope:
                await self._follow_until_done(follower)
        except RedisError as exc:
            follower.error = exc
        finally:
            follower.running = False
            if self._followers.get(follower.response_id) is follower:
                del self._followers[follower.response_id]
            follower.wake()

    async def _follow_until_done(self, follower: _Follower) -> None:
        pause = 0.0
        while follower.readers > 0 and not (follower.ended or follower.gone or self._closed):
            try:
                await self._follow_step(follower)
                pause = 0.0
            except (RedisConnectionError, TimeoutError):
                # Redis restarted or dropped us: readers keep waiting, nothing was lost
                # (the next step reads from the same id).
                pause = min(max(2 * pause, 0.05), self.block)
                await anyio.sleep(pause)

    async def _follow_step(self, follower: _Follower) -> None:
        """Reads what is new, or waits for it; stops the follower when there will be
        nothing more (the end was read, or the response is gone)."""
        assert self._blocking is not None
        page = await self._read(follower.response_id, follower.end)
        if page.state == "missing":
            follower.gone = True
        elif page.state == "trimmed":
            assert page.last is not None
            follower.restart_at(page.last)
            follower.wake()
        elif page.entries:
            follower.add(page.entries, self.window)
            follower.wake()
        elif page.ended:
            follower.ended = True
        else:
            # Woken by anything newer than what the window holds; the page read above
            # (not XREAD's reply) is what readers get, because XREAD would skip a
            # trimmed stretch in silence.
            log = self._keys(follower.response_id).log
            await self._blocking.xread(
                {log: format_id(follower.end)}, count=1, block=_milliseconds(self.block)
            )


class RedisSubscription:
    """One reader's way through one response's stream (see :class:`respflow.Subscription`).

    Events it has read but not yet returned, and its position, are kept across calls: a
    cancelled ``__anext__`` (a heartbeat's timeout) loses nothing.
    """

    def __init__(
        self, broker: RedisBroker, response_id: str, position: StreamId, first: _Page
    ) -> None:
        self.response_id = response_id
        self._broker = broker
        self._position = position
        self._pending: deque[tuple[StreamId, Event]] = deque(first.entries)
        self._follower: _Follower | None = None
        self._top = first.last
        """The newest id the last page read showed."""
        self._done = first.ended and not first.entries

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> Event:
        broker = self._broker
        while True:
            if self._pending:
                return self._take()
            if self._done or broker._closed:
                break
            follower = self._follower
            if follower is not None:
                if follower.gone:
                    raise _not_found(self.response_id, "expired while it was being read")
                if follower.error is not None:
                    self._unfollow()
                    raise follower.error
                newer = follower.after(self._position)
                if newer:
                    self._pending.extend(newer)
                    continue
                if newer is not None and follower.ended:
                    break
                if newer is not None and follower.running:
                    await follower.grown.wait()
                    continue
                self._unfollow()  # it does not reach back to this reader: read alone
            elif self._follow_shared():
                continue
            page = await broker._read(self.response_id, self._position)
            _raise_if_unreadable(page, self.response_id, "this reader has not read yet")
            self._top = page.last
            if page.entries:
                self._pending.extend(page.entries)
            elif page.ended:
                break
            else:
                assert page.last is not None
                self._follower = broker._follow(self.response_id, min(self._position, page.last))
        await self.aclose()
        raise StopAsyncIteration

    def ready(self, limit: int = 256) -> list[Event]:
        """Up to ``limit`` of the events this reader can have now, without waiting or
        asking Redis: what it holds, and what its follower's window holds after it. A
        server writes them at once (see ``MemoryBroker``'s subscriptions)."""
        follower = self._follower
        if not self._pending and follower is not None and follower.error is None:
            newer = follower.after(self._position)
            if newer and not follower.gone:
                self._pending.extend(newer)
        taken: list[Event] = []
        while self._pending and len(taken) < limit:
            taken.append(self._take())
        return taken

    def _follow_shared(self) -> bool:
        """Waits on this process's follower of the response instead of reading pages
        alone: joins the one running if its window reaches back to this reader, else
        starts one here. Readers that read alone while events keep coming would each read
        every event from Redis (and, with hundreds of them, never catch up).

        A follower starts at or below the newest id a page showed: one started at a
        cursor some reader gave from the future would not reach back to the readers at
        the top.
        """
        broker = self._broker
        follower = broker._followers.get(self.response_id)
        if follower is not None and follower.running:
            if follower.after(self._position) is None:
                return False  # it does not reach back here: catch up alone first
            follower.readers += 1
            self._follower = follower
            return True
        if self._top is None:
            return False
        self._follower = broker._follow(self.response_id, min(self._position, self._top))
        return True

    def _take(self) -> Event:
        self._position, event = self._pending.popleft()
        if isinstance(event, END_TYPES):
            self._pending.clear()
            self._done = True
            self._unfollow()
        return event

    def _unfollow(self) -> None:
        if self._follower is not None:
            self._follower.readers -= 1
            self._follower = None

    async def aclose(self) -> None:
        self._done = True
        self._pending.clear()
        self._unfollow()
        await anyio.lowlevel.checkpoint()


async def _unwind(stack: contextlib.AsyncExitStack, exc: BaseException) -> None:
    """Closes ``stack`` with ``exc`` passing through, unless something else went wrong.

    coredis's clients are task groups: whatever leaves their ``async with`` comes out
    wrapped in an exception group (one per client, and one for the broker's own task
    group), so a caller would have to catch ``ConnectionFailed`` or its own errors out of
    ``ExceptionGroup(ExceptionGroup(...))``. A group holding ``exc`` alone is dropped, and
    the caller re-raises ``exc`` itself.
    """
    try:
        await stack.__aexit__(type(exc), exc, exc.__traceback__)
    except BaseExceptionGroup as group:
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if inner is not exc:
            raise


def _raise_if_unreadable(page: _Page, response_id: str, which: str) -> None:
    if page.state == "missing":
        raise _not_found(response_id, "is unknown, or it expired")
    if page.state == "trimmed":
        raise TooOld(
            f"the events of {response_id} {which} are no longer kept (only the newest "
            "max_events are); resume from a newer cursor, or fetch the finished response"
        )


def _not_found(response_id: str, why: str) -> ResponseNotFound:
    return ResponseNotFound(
        f"Redis keeps no events of response {response_id}: it {why} (a finished response is "
        "kept for keep_after_end seconds, an unfinished one keep_running after its last event)"
    )


def _lease_lost(lease: Lease) -> LeaseLost:
    return LeaseLost(
        f"the lease of {lease.owner} on {lease.response_id} is no longer held; another "
        "producer may own the response now: stop publishing it"
    )


def _lease_value(lease: Lease) -> str:
    return f"{lease.token} {lease.owner}"


def _seconds(seconds: float) -> int:
    """Whole seconds for ``EXPIRE``, rounded up so nothing goes before its time."""
    return math.ceil(seconds)


def _milliseconds(seconds: float) -> int:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise UsageError(f"a lease lasts a positive, finite number of seconds, not {seconds}")
    return max(1, math.ceil(seconds * 1000))


def _parse_last(raw: object) -> tuple[StreamId | None, bool]:
    if raw is None:
        return None, False
    text = _text(raw)
    newest, _, flag = text.partition(" ")
    return parse_id(newest), flag == "end"


def _decode_entry(response_id: str, raw: object) -> tuple[StreamId, Event]:
    stream_id_raw, values = _list(raw)
    stream_id = parse_id(_text(stream_id_raw))
    fields = _list(values)
    payload = dict(zip(fields[::2], fields[1::2], strict=False)).get(b"e")
    try:
        if not isinstance(payload, bytes):
            raise TypeError("no 'e' field")
        return stream_id, decode_event(payload)
    except (msgspec.DecodeError, TypeError) as exc:
        # Something other than respflow wrote here; the reader is told, and goes on.
        # (msgspec before 0.20 raises DecodeError, not a ValueError.)
        cursor = cursor_of(stream_id)
        return stream_id, StreamError(
            response_id,
            stream_id[0] - OFFSET,
            cursor,
            code="unreadable_broker_entry",
            message=f"the broker's entry {format_id(stream_id)} is not a respflow event "
            f"({exc}); it was skipped",
            fatal=False,
        )


def _list(raw: object) -> list[Any]:
    assert isinstance(raw, list | tuple), f"unexpected reply from Redis: {raw!r}"
    return list(raw)


def _text(raw: object) -> str:
    assert isinstance(raw, bytes | str), f"unexpected reply from Redis: {raw!r}"
    return raw.decode() if isinstance(raw, bytes) else raw


def _int(raw: object) -> int:
    assert isinstance(raw, int), f"unexpected reply from Redis: {raw!r}"
    return raw
