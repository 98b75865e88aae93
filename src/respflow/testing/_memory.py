"""A sink that keeps what it gets, for tests: optionally slow, optionally failing."""

from __future__ import annotations

import anyio

from .. import _events as ev

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every event in :attr:`events`; counts :attr:`closed` calls to ``aclose``.

    Args:
        delay: seconds each ``send`` takes, to play a slow consumer.
        fail_after: raise on the event after this many (a broken consumer).
    """

    def __init__(self, *, delay: float = 0.0, fail_after: int | None = None) -> None:
        self.events: list[ev.Event] = []
        self.closed = 0
        self.delay = delay
        self.fail_after = fail_after

    async def send(self, event: ev.Event) -> None:
        if self.fail_after is not None and len(self.events) >= self.fail_after:
            raise RuntimeError(f"MemorySink failed after {self.fail_after} events, as asked")
        if self.delay:
            await anyio.sleep(self.delay)
        self.events.append(event)

    async def aclose(self) -> None:
        self.closed += 1

    @property
    def types(self) -> list[str]:
        return [event.type for event in self.events]
