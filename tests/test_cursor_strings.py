"""Cursors from the network: only what respflow writes reads as one.

A reader's cursor comes from a ``Last-Event-ID`` header or an ``?after=`` parameter, and
the servers echo a cursor they cannot serve in their reply. Python's ``int()`` reads far
more than digits (whitespace and line ends around them, ``+``, ``_`` between digits, any
script's digits), so ``"5\\n\\n-0"`` was the cursor ``5-0``, and its line ends went into
the reply's server-sent events, cutting its frame in two.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import httpx2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow import Hub, events_app, parse_cursor
from respflow._protocols.stream import parse_frame_id
from respflow.testing import LoopbackServer

CURSOR = re.compile(r"-?[0-9]+-[0-9]+")

pieces = st.sampled_from(
    ["0", "5", "12", "-", "--", " ", "\n", "\r", "\t", "+", "_", "٣", "¹", "x", "\x00", "."]
)


@given(st.lists(pieces, max_size=8).map("".join))
@example("5\n\n-0")
@example(" 5-0")
@example("5-0\r")
@example("+5-+0")
@example("1_0-0")
@example("٣-0")
@example("-5-0")
def test_a_cursor_is_digits_a_dash_and_digits(text: str) -> None:
    if CURSOR.fullmatch(text):
        seq, _, k = text.rpartition("-")
        assert parse_cursor(text) == (int(seq), int(k))
    else:
        with pytest.raises(ValueError, match="not a respflow cursor"):
            parse_cursor(text)


@given(st.integers(-1, 2**70), st.integers(0, 2**70))
def test_every_cursor_respflow_writes_reads_back(seq: int, k: int) -> None:
    assert parse_cursor(f"{seq}-{k}") == (seq, k)


@given(st.lists(pieces, max_size=8).map("".join), st.lists(pieces, max_size=4).map("".join))
@example("5-0", "٣")
@example("5-0", "")
@example("5-0", " 1")
def test_a_frame_id_is_a_cursor_a_colon_and_digits(cursor: str, index: str) -> None:
    frame_id = f"{cursor}:{index}"
    if CURSOR.fullmatch(cursor) and re.fullmatch(r"[0-9]{1,9}", index):
        assert parse_frame_id(frame_id) == (parse_cursor(cursor), int(index))
    else:
        with pytest.raises(ValueError, match="not a"):
            parse_frame_id(frame_id)


SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
EVENTS = list(respflow.replay(SAMPLE))
RID = EVENTS[0].response_id


def _allow(request: Any, response_id: str) -> bool:
    return True


@pytest.mark.anyio
async def test_a_cursor_with_line_ends_is_refused_not_echoed_into_the_stream(
    anyio_backend: str,
) -> None:
    hub = Hub(history=10)
    for event in EVENTS:
        await hub.send(event)
    async with (
        LoopbackServer(events_app(hub, authorize=_allow)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        reply = await http.get(f"/events/{RID}", params={"after": "5\n\nevent: x\n-0"})
        assert reply.status_code == 400
        reply = await http.get(f"/events/{RID}", params={"after": "5\n\n-0"})
        assert reply.status_code == 400
        # A well-formed cursor older than the history is still told so, in one frame.
        reply = await http.get(f"/events/{RID}", params={"after": EVENTS[2].cursor})
        assert reply.text.count("\n\n") == 1
        assert reply.text.startswith("event: too_old\ndata: ")
