"""The bytes of a download, as a Storage's ``save`` reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator


class Chunks:
    """``parts``, one at a time; with ``fail_after``, the connection drops after that many.
    A class, not a generator, so leaving it unfinished is fine."""

    def __init__(self, *parts: bytes, fail_after: int | None = None) -> None:
        self._parts = list(parts)
        self._fail_after = fail_after
        self._n = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._fail_after is not None and self._n >= self._fail_after:
            raise ConnectionResetError("the connection dropped")
        if self._n >= len(self._parts):
            raise StopAsyncIteration
        self._n += 1
        return self._parts[self._n - 1]
