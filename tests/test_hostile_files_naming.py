"""Link rewriting and file naming against hostile input (issue 10, items 6, 8, 10, 18, 19).

A link and its file must meet: the rewriter's target and the stored name follow one rule,
a function of the file's container and sandbox path, so two files of one name never share
a link. The rewriter's work grows with the text, never with its square; deltas always add
up to the text, even around a link too long to hold; no device name starts a file name;
a name too long for the collision counter still gets one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

import respflow
from respflow import LinkRewriter, LocalStorage, Reconnect, safe_filename
from respflow import _events as ev
from respflow.testing import MockServer, Recording, StreamBuilder, to_sse

FAST = Reconnect(attempts=3, initial_delay=0.01)
DEVICES = {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
DEVICES |= {f"com{i}" for i in "123456789"} | {f"lpt{i}" for i in "123456789"}
# What a link target stops at (whitespace too): the run a link is measured by.
ENDERS = re.compile(r"[\s)\]\"'<>`]")


# -- helpers ------------------------------------------------------------------------------


class Chunks:
    """The bytes of one download; a class, so leaving it unfinished is fine."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


async def _run(
    mock: MockServer,
    storage: LocalStorage,
    rewriter: LinkRewriter | None = None,
    **options: Any,
) -> list[respflow.Event]:
    """A response through the openai SDK, the file fetcher and (if given) the rewriter."""
    out: list[respflow.Event] = []
    async with (
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as sdk,
        respflow.stream(sdk, model="m", input="x") as events,
        respflow.fetch_files(events, sdk, storage, retry=FAST, **options) as fetched,
    ):
        async for event in fetched:
            out += rewriter.feed(event) if rewriter is not None else [event]
    return out


# -- 18: device names -----------------------------------------------------------------------


def _device_stem(name: str) -> str:
    """What Windows compares with its device names: the name up to its first dot, without
    the spaces before it."""
    return name.split(".", 1)[0].rstrip(" ").lower()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CON.tar.gz", "_CON.tar.gz"),
        ("NUL .txt", "_NUL .txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("Aux.", "_Aux"),
        ("lpt9.a.b", "_lpt9.a.b"),
        ("PRN  .tar.gz", "_PRN  .tar.gz"),
        ("conin$.log", "_conin$.log"),
        ("CLOCK$.x.y", "_CLOCK$.x.y"),
        ("COM\u00b9.txt", "_COM1.txt"),  # superscript one: NFKC makes it COM1
        ("console.tar.gz", "console.tar.gz"),  # not a device: kept as it is
        ("con_report.csv", "con_report.csv"),
    ],
)
def test_a_device_name_never_starts_a_safe_name(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
    assert _device_stem(safe) not in DEVICES
    assert safe_filename(safe) == safe


device_like = st.tuples(
    st.sampled_from(sorted(DEVICES)).map(lambda d: d.upper() if len(d) % 2 else d),
    st.text(alphabet=" .", max_size=3),
    st.lists(st.sampled_from(["txt", "tar", "gz", "", "x y"]), max_size=3).map(".".join),
).map("".join)


@given(st.one_of(device_like, st.text()))
def test_no_safe_name_is_a_device_whatever_follows_it(name: str) -> None:
    safe = safe_filename(name)
    assert _device_stem(safe) not in DEVICES
    assert safe_filename(safe) == safe


# -- 10: the collision counter fits ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name",
    [
        "r" * 196 + ".csv",  # exactly 200 bytes
        "r" * 197 + ".csv",
        "r" * 250 + ".csv",
        "é" * 150 + ".csv",
        "n" * 300,
        "a." + "e" * 190,  # an extension too long to keep apart
    ],
)
async def test_a_second_file_with_a_name_of_200_bytes_or_more_is_stored(
    anyio_backend: str, tmp_path: Path, name: str
) -> None:
    storage = LocalStorage(tmp_path)
    first = await storage.save("resp_1", "k1", name, Chunks(b"first"))
    second = await storage.save("resp_1", "k2", name, Chunks(b"second"))
    third = await storage.save("resp_1", "k3", name, Chunks(b"third"))
    assert len({first.filename, second.filename, third.filename}) == 3
    assert " (2)" in second.filename
    assert " (3)" in third.filename
    for stored, data in ((first, b"first"), (second, b"second"), (third, b"third")):
        assert len(stored.filename.encode()) <= 200
        assert safe_filename(stored.filename) == stored.filename  # files_app serves it
        assert Path(stored.location).read_bytes() == data


@pytest.mark.anyio
async def test_two_cited_files_of_one_long_name_are_each_downloaded_once_and_saved(
    anyio_backend: str, tmp_path: Path
) -> None:
    name = "quarterly_results_" + "x" * 210 + ".csv"
    folder = tmp_path / "container"
    folder.mkdir()
    (folder / name).write_bytes(b"q,1\n")
    citations = [
        {
            "type": "container_file_citation",
            "container_id": "cntr_long",
            "file_id": f"cfile_{n}",
            "filename": name,
            "start_index": 0,
            "end_index": 0,
        }
        for n in (1, 2)
    ]
    builder = (
        StreamBuilder(response_id="resp_long")
        .code_call("save()", logs="", container_id="cntr_long")
        .message("Two versions of the results.", annotations=citations)
    )
    async with MockServer(Recording.from_bytes(to_sse(builder.events())), files=folder) as mock:
        got = await _run(mock, LocalStorage(tmp_path / "files"))
    assert not [e for e in got if isinstance(e, ev.FileFailed)]
    saved = [e for e in got if isinstance(e, ev.FileSaved)]
    assert sorted(e.file_id or "" for e in saved) == ["cfile_1", "cfile_2"]
    assert len({e.location for e in saved}) == 2
    for event in saved:
        assert Path(event.location).read_bytes() == b"q,1\n"
        assert len(event.filename.encode()) <= 200
    assert len([r for r in mock.requests if r.path.endswith("/content")]) == 2
    assert got[-1].type == "response.completed"
