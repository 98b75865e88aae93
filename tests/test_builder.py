"""StreamBuilder writes streams the openai SDK itself accepts, event by event."""

from __future__ import annotations

from typing import Any

import pytest

import respflow
from respflow import _events as ev
from respflow.testing import StreamBuilder

pydantic = pytest.importorskip("pydantic")


def _builders() -> list[StreamBuilder]:
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_sample",
        "file_id": "cfile_1",
        "filename": "a.csv",
        "start_index": 0,
        "end_index": 0,
    }
    return [
        StreamBuilder()
        .reasoning("Think.")
        .code_call("print(1)", logs="1\n", images=["data:image/png;base64,AAAA"])
        .message("Done.", annotations=[citation]),
        StreamBuilder(background=True, include_outputs=False).code_call("x = 1"),
        StreamBuilder().shell_call(
            ["ls", "cat a.txt"], outputs=[("a.txt\n", "", 0), ("", "no\n", 1)]
        ),
        StreamBuilder().shell_call(["uname -a"], outputs=None, container_id=None),
    ]


@pytest.mark.parametrize("builder", _builders())
def test_every_event_validates_against_the_sdks_types(builder: StreamBuilder) -> None:
    from openai.types.responses import ResponseStreamEvent

    adapter: Any = pydantic.TypeAdapter(ResponseStreamEvent)
    for event in builder.events():
        parsed = adapter.validate_python(event)
        assert parsed.type == event["type"]
    from openai.types.responses import Response

    pydantic.TypeAdapter(Response).validate_python(builder.response())


def test_a_built_shell_call_reads_back_as_one_call() -> None:
    wire = StreamBuilder().shell_call(
        ["ls", "cat a.txt"], outputs=[("a.txt\n", "", 0), ("x\n", "", 0)]
    )
    events = list(respflow.replay(respflow.testing.to_sse(wire.events())))
    [completed] = [e for e in events if isinstance(e, ev.CodeCompleted)]
    assert (completed.tool, completed.code) == ("shell", "ls\ncat a.txt")
    assert [e.delta for e in events if isinstance(e, ev.CodeOutput)] == ["a.txt\n", "x\n"]
