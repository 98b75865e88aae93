"""respflow on Redis Streams: a Broker many server processes share, on asyncio and trio.

See the README beside this package.
"""

from __future__ import annotations

from typing import Any

from respflow import UsageError

from ._broker import RedisBroker, RedisSubscription

__all__ = ["RedisBroker", "RedisSubscription", "broker_from_url"]


def broker_from_url(url: str, **limits: Any) -> RedisBroker:
    """The broker a ``redis://``, ``rediss://`` or ``unix://`` URL names (the
    ``respflow.brokers`` entry point); ``limits`` are :class:`RedisBroker`'s keyword
    arguments (``max_events``, ``keep_after_end``, ...).

    Enter it (``async with``) before use.

    Raises:
        UsageError: not a Redis URL, or a limit it does not know or refuses.
    """
    try:
        return RedisBroker(url, **limits)
    except TypeError as exc:
        raise UsageError(f"RedisBroker does not take these limits: {exc}") from None
