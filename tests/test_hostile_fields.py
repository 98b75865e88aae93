"""Any field of any wire event given a value a server should never send: the assembler
keeps its promises, and reads the same through bytes (its fast path and the general
one) and through ``feed_event``.

The mutations reach every depth of an event (the item inside ``output_item.done``, an
annotation's indices, the terminal response's ``output``) with values at the edges:
64-bit bounds and past them, floats, the wrong type, empty and NUL-bearing strings, lone
surrogates (JSON escapes them, Python's ``json`` reads them), braces and percent signs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler
from respflow import _events as ev
from respflow.testing import StreamBuilder

from .test_fast_path import FrameByFrame, run

HOSTILE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -0.0,
    1e308,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    "",
    "x",
    "\x00",
    "\ud800",
    "a\udfffb",
    "{",
    "}",
    "%s%n",
    "-1-0",
    "\r\n",
    "\ufeff",
    "sandbox:/mnt/data/../../x",
    "/mnt/data/",
    "message",
    "code_interpreter_call",
    "output_text",
    [],
    [None],
    {},
    {"type": "message"},
    {"type": "output_text", "text": 5},
]


def hostile_stream() -> list[dict[str, Any]]:
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_1",
        "file_id": "cfile_1",
        "filename": "x.csv",
        "start_index": 3,
        "end_index": 27,
    }
    return (
        StreamBuilder()
        .reasoning("think")
        .code_call("print(1)", logs="1\n")
        .shell_call(["ls"], outputs=[("a\n", "", 0)])
        .message("hi sandbox:/mnt/data/x.csv and /mnt/data/y.png", annotations=[citation])
        .item({"id": "fc_1", "type": "function_call", "arguments": "{}"})
        .events()
    )


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value a mutation can reach."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*prefix, index))
    return found


DELETE = object()
"""A mutation's value that removes the key (or, in a list, sets the entry to null)."""

Mutation = tuple[int, int | tuple[Any, ...], Any]
"""(which event, which place in it: a path, or an int taken modulo the places, value)"""

mutations = st.lists(
    st.tuples(
        st.integers(0, len(hostile_stream()) - 1),
        st.integers(0, 10**6),
        st.sampled_from([*HOSTILE_VALUES, DELETE]),
    ),
    min_size=1,
    max_size=4,
)


def mutated(changes: list[Mutation]) -> list[dict[str, Any]]:
    events = hostile_stream()
    for at, where, value in changes:
        places = paths(events[at])
        if not places:  # every key of it was deleted
            continue
        path = places[where % len(places)] if isinstance(where, int) else where
        parent: Any = events[at]
        for step in path[:-1]:
            parent = parent[step]
        if value is DELETE and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = None if value is DELETE else copy.deepcopy(value)
    return events


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e.get('type')}\ndata: {json.dumps(e)}\n\n" for e in events).encode(
        "utf-8", "surrogatepass"
    )


def through_feed_event(events: list[dict[str, Any]]) -> list[respflow.Event]:
    asm = Assembler()
    out = [e for event in events for e in asm.feed_event(json.dumps(event))]
    return out + asm.close()


def assert_kept_promises(events: list[respflow.Event]) -> None:
    ends = [i for i, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends
    assert ends[-1] == len(events) - 1
    internal = [
        e for e in events if isinstance(e, ev.StreamError) and e.code == "unprocessable_event"
    ]
    assert not internal, internal[0].message
    for rid in {e.response_id for e in events}:
        cursors = [respflow.parse_cursor(e.cursor) for e in events if e.response_id == rid]
        assert len(set(cursors)) == len(cursors)
    # Every event is what its type says: a broker's readers and `respflow replay` decode
    # what was encoded, and refuse an event holding a field of another type.
    for event in events:
        assert respflow.decode_event(respflow.encode_event(event)) == event


CODE_ADDED, CODE_DONE, SHELL_ADDED, SHELL_DONE, SHELL_OUTPUT_DONE = 6, 13, 14, 18, 22
ANNOTATION, CALL_DONE = 35, 40


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations, st.lists(st.integers(0, 20_000), max_size=8))
# An item or annotation type that is a list or an object was unhashable: an error
# inside respflow ("please report this"), and the item was lost.
@example([(CODE_ADDED, ("item", "type"), [])], [])
@example([(ANNOTATION, ("annotation", "type"), {})], [])
@example([(SHELL_DONE, ("item", "environment", "type"), {})], [])
# A field of the wrong type went into a typed event, which decode_event then refused.
@example([(CODE_ADDED, ("item", "container_id"), 2**63)], [])
@example([(SHELL_ADDED, ("item", "environment", "container_id"), {"type": "message"})], [])
@example([(CODE_DONE, ("item", "container_id"), [1])], [])
@example([(CODE_DONE, ("item", "outputs", 0), None)], [])
@example([(SHELL_OUTPUT_DONE, ("item", "output", 0), "x")], [])
@example([(ANNOTATION, ("annotation", "filename"), [])], [])
@example([(ANNOTATION, ("annotation", "container_id"), 1.5)], [])
@example([(ANNOTATION, ("annotation", "end_index"), True)], [])
@example([(CALL_DONE, ("item", "id"), 2**53 + 1)], [])
@example([(CALL_DONE, ("item", "status"), False)], [])
def test_a_hostile_value_anywhere_keeps_the_promises_on_every_path(
    changes: list[Mutation], cuts: list[int]
) -> None:
    events = mutated(changes)
    body = sse(events)
    general = run(FrameByFrame(), body, [])
    assert_kept_promises(general)
    assert run(Assembler(), body, cuts) == general
    assert through_feed_event(events) == general


LAST = len(hostile_stream()) - 1
response_mutations = st.lists(
    st.tuples(st.just(LAST), st.integers(0, 10**6), st.sampled_from([*HOSTILE_VALUES, DELETE])),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(response_mutations)
def test_a_hostile_value_anywhere_in_a_finished_response_keeps_the_promises(
    changes: list[Mutation],
) -> None:
    response = mutated(changes)[LAST].get("response")
    asm = Assembler()
    events = asm.feed_response(json.dumps(response)) + asm.close()
    assert_kept_promises(events)
    # A dict is read as the same JSON, but for text that is not valid Unicode, which
    # each way reports as it finds it.
    if isinstance(response, dict) and not [e for e in events if isinstance(e, ev.StreamError)]:
        asm = Assembler()
        assert asm.feed_response(response) + asm.close() == events
