"""Recordings that are broken, or that respflow wrote itself: replay says what is wrong,
ends every response once, and reads back its own JSONL as it was written."""

from __future__ import annotations

from typing import Any

import pytest

import respflow
from respflow import _events as ev
from respflow import replay
from respflow.testing import StreamBuilder, to_jsonl

WIRE = StreamBuilder().code_call("print(1)", logs="1\n").message("done").events()


def assert_ends_once_last(events: list[respflow.Event], end: type[ev.EventBase]) -> None:
    ends = [i for i, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends == [len(events) - 1]
    assert isinstance(events[-1], end)


def items(events: list[respflow.Event]) -> list[tuple[str, Any]]:
    return [
        (e.type, getattr(e, "text", None) or getattr(e, "code", None))
        for e in events
        if isinstance(e, (ev.CodeCompleted, ev.MessageCompleted))
    ]


# -- 16. broken recordings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "response", "id": "resp_1", "output": "not a list"}',
        b'{"object": "response", "id": "resp_1", "status": 7, "output": []}',
    ],
)
def test_a_response_that_does_not_decode_is_reported_and_ended(body: bytes) -> None:
    events = list(replay(body))
    assert [e.code for e in events if isinstance(e, ev.StreamError)] == ["invalid_response"]
    assert_ends_once_last(events, ev.StreamTruncated)


@pytest.mark.parametrize("fmt", [None, "jsonl"])
def test_a_stray_bracket_before_jsonl_is_one_bad_line_not_an_exception(fmt: Any) -> None:
    body = b"[\n" + to_jsonl(WIRE)
    events = list(replay(body, format=fmt))
    errors = [e for e in events if isinstance(e, ev.StreamError)]
    assert [(e.code, e.fatal) for e in errors] == [("invalid_json", False)]
    assert items(events) == items(list(replay(to_jsonl(WIRE))))
    assert_ends_once_last(events, ev.ResponseCompleted)
