"""The file fetcher against a hostile or broken API and storage: every response still ends.

Whatever the container listing, a download or the storage does, each file the response
announced ends in exactly one ``file.saved`` or ``file.failed`` and the response's end is
delivered, last. Everything runs against the loopback mock over real HTTP.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from respflow import FileTooLarge, LocalStorage

pytestmark = pytest.mark.anyio


class _Held:
    """A download that sends its bytes, then waits to be told to finish (or to fail)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent = anyio.Event()
        self.finish = anyio.Event()
        self.fail = False
        self._taken = False

    def __aiter__(self) -> _Held:
        return self

    async def __anext__(self) -> bytes:
        if not self._taken:
            self._taken = True
            return self.data
        self.sent.set()  # the bytes were taken: the storage counts them from here
        await self.finish.wait()
        if self.fail:
            raise ConnectionResetError("the connection dropped")
        raise StopAsyncIteration


def _stored(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in root.rglob("*.bin")}


async def test_downloads_under_way_share_the_response_cap(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path, max_response_bytes=1500)
    first = _Held(b"a" * 1000)
    async with anyio.create_task_group() as group:
        group.start_soon(storage.save, "r", "first", "first.bin", first)
        await first.sent.wait()
        second = _Held(b"b" * 1000)
        second.finish.set()
        with pytest.raises(FileTooLarge, match="max_response_bytes"):
            await storage.save("r", "second", "second.bin", second)
        first.finish.set()
    assert _stored(tmp_path) == {"first.bin": 1000}
    last = _Held(b"c" * 500)  # what is left of the cap is still there to use
    last.finish.set()
    await storage.save("r", "last", "last.bin", last)
    assert _stored(tmp_path) == {"first.bin": 1000, "last.bin": 500}


async def test_a_download_that_fails_gives_back_its_share_of_the_cap(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path, max_response_bytes=1500)
    cut = _Held(b"a" * 1000)
    cut.fail = True
    cut.finish.set()
    with pytest.raises(ConnectionResetError):
        await storage.save("r", "cut", "cut.bin", cut)
    whole = _Held(b"b" * 1500)
    whole.finish.set()
    await storage.save("r", "whole", "whole.bin", whole)
    assert _stored(tmp_path) == {"whole.bin": 1500}
