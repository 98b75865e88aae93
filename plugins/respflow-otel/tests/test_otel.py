"""OtelSink: respflow's events as OpenTelemetry GenAI spans, read back through the SDK's
in-memory exporter, on asyncio and trio.

Streams are the bundled sample and streams written with StreamBuilder, replayed by
respflow and delivered by its pipeline, as an application would; then live responses from
the mock Responses API over loopback HTTP, through the openai SDK and respflow.stream with
their files fetched, with and without the official OpenAI instrumentation
(opentelemetry-instrumentation-genai-openai) instrumenting the SDK.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from respflow_otel import SCOPE, OtelSink, official_instrumentation_active

import respflow
from respflow import CodeCompleted, CodeLogs, CodeStarted, FileFailed, FileSaved
from respflow.testing import MemorySink, MockServer, Recording, StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = SAMPLES.joinpath("code_interpreter.sse").read_bytes()
FILES = Path(str(SAMPLES.joinpath("files")))
CI_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
OFFICIAL = "opentelemetry.instrumentation.genai.openai"
DEPRECATED = "opentelemetry.instrumentation.openai_v2"
# .ci/run's main job sets this, so there a missing instrumentation fails instead of skipping.
REQUIRED = os.environ.get("RESPFLOW_OTEL_INSTRUMENTATION_TEST") == "required"
Json = dict[str, Any]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Started(SpanProcessor):
    """Notes the id of every span the SDK starts, so a test can tell one never ended."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.ids.append(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _recording() -> tuple[TracerProvider, InMemorySpanExporter, list[int]]:
    """A tracer provider, where its finished spans land, and the ids of those it started."""
    provider, exporter = TracerProvider(), InMemorySpanExporter()
    started: list[int] = []
    provider.add_span_processor(_Started(started))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter, started


def _assert_each_span_ended_once(exporter: InMemorySpanExporter, started: list[int]) -> None:
    ended = [span.context.span_id for span in exporter.get_finished_spans() if span.context]
    assert sorted(ended) == sorted(started), "a span was never ended"


@pytest.fixture
def recording(
    caplog: pytest.LogCaptureFixture,
) -> Iterator[tuple[TracerProvider, InMemorySpanExporter, list[int]]]:
    """After the test, every span started has ended exactly once: each is exported, and
    the SDK never had to refuse a second ``end()``, nor an attribute or an event for an
    ended span (it logs a warning for each)."""
    provider, exporter, started = _recording()
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield provider, exporter, started
    _assert_each_span_ended_once(exporter, started)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]
    provider.shutdown()


@pytest.fixture
def provider(recording: tuple[TracerProvider, InMemorySpanExporter, list[int]]) -> TracerProvider:
    return recording[0]


@pytest.fixture
def exporter(
    recording: tuple[TracerProvider, InMemorySpanExporter, list[int]],
) -> InMemorySpanExporter:
    return recording[1]


async def _aiter(events: Iterable[respflow.Event]) -> AsyncIterator[respflow.Event]:
    for event in events:
        yield event


async def _paced(events: Iterable[respflow.Event]) -> AsyncIterator[respflow.Event]:
    """``events`` as a network would give them: the sinks' tasks run in between."""
    for event in events:
        await anyio.sleep(0)
        yield event


async def _traced(
    events: Iterable[respflow.Event],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    **options: Any,
) -> list[ReadableSpan]:
    """The spans ``events`` make when delivered to an OtelSink (only those: the exporter
    keeps every span of the test)."""
    before = len(exporter.get_finished_spans())
    sink = OtelSink(tracer_provider=provider, **options)
    assert await respflow.deliver(_aiter(events), sink) == []
    return list(exporter.get_finished_spans()[before:])


def _named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    [span] = _named(spans, name)
    return span


def _attributes(span: ReadableSpan) -> Json:
    return dict(span.attributes or {})


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def _everything_recorded(spans: Sequence[ReadableSpan]) -> str:
    """Every attribute and event attribute of ``spans``, as one text to search."""
    values: list[str] = []
    for span in spans:
        values += [str(value) for value in _attributes(span).values()]
        for event in span.events:
            values.append(event.name)
            values += [str(value) for value in (event.attributes or {}).values()]
    return "\n".join(values)


def _wire(builder: StreamBuilder, *, end: str | None = "completed") -> list[Json]:
    return builder.events(end=end)


def _replayed(wire: list[Json]) -> list[respflow.Event]:
    return list(respflow.replay(to_sse(wire)))


def _patched(wire: list[Json], change: Callable[[Json], None]) -> list[Json]:
    """``wire`` with ``change`` applied to each event's copy."""
    changed = copy.deepcopy(wire)
    for event in changed:
        change(event)
    return changed


# -- what a response becomes ------------------------------------------------------------


async def test_the_sample_is_a_chat_span_with_usage_around_an_execute_tool_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    spans = await _traced(respflow.replay(SAMPLE), provider, exporter)
    assert sorted(span.name for span in spans) == ["chat gpt-5", "execute_tool code_interpreter"]
    chat, tool = _one(spans, "chat gpt-5"), _one(spans, "execute_tool code_interpreter")

    assert chat.kind is SpanKind.CLIENT
    assert _attributes(chat) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.id": "resp_sample_dice",
        "gen_ai.response.model": "gpt-5",
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 377,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 128,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert chat.status.status_code is StatusCode.UNSET

    assert tool.kind is SpanKind.INTERNAL
    assert _parent_id(tool) == _id(chat)
    assert _attributes(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "code_interpreter",
        "gen_ai.tool.call.id": "ci_0001",
        "gen_ai.tool.type": "extension",
        "respflow.container.id": "cntr_sample",
    }
    assert tool.status.status_code is StatusCode.UNSET
    assert chat.start_time is not None
    assert chat.end_time is not None
    assert tool.start_time is not None
    assert tool.end_time is not None
    assert chat.start_time <= tool.start_time <= tool.end_time <= chat.end_time


async def test_code_and_logs_are_recorded_only_when_opted_in(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    events = list(respflow.replay(SAMPLE))
    [completed] = [e for e in events if isinstance(e, CodeCompleted)]
    logs = "".join(e.logs for e in events if isinstance(e, CodeLogs))
    assert "rolls = pd.Series" in completed.code
    assert "mean" in logs

    by_default = await _traced(events, provider, exporter)
    recorded = _everything_recorded(by_default)
    assert "rolls = pd.Series" not in recorded
    assert "mean" not in recorded

    opted_in = await _traced(events, provider, exporter, capture_content=True)
    tool = _one(opted_in, "execute_tool code_interpreter")
    attributes = _attributes(tool)
    assert json.loads(attributes["gen_ai.tool.call.arguments"]) == {"code": completed.code}
    assert json.loads(attributes["gen_ai.tool.call.result"]) == {"logs": logs}


async def test_shell_and_code_interpreter_calls_each_get_their_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    builder = (
        StreamBuilder(response_id="resp_tools")
        .shell_call(
            ["ls", "cat notes.txt"],
            outputs=[("notes.txt\n", "", 0), ("", "cat: notes.txt: Permission denied\n", 1)],
        )
        .code_call("print(6 * 7)", logs="42\n")
        .message("Done.")
    )
    spans = await _traced(_replayed(_wire(builder)), provider, exporter, capture_content=True)
    chat = _one(spans, "chat gpt-5")
    shell = _one(spans, "execute_tool shell")
    python = _one(spans, "execute_tool code_interpreter")

    assert _parent_id(shell) == _parent_id(python) == _id(chat)
    shell_attributes = _attributes(shell)
    assert shell_attributes["gen_ai.tool.name"] == "shell"
    assert shell_attributes["gen_ai.tool.call.id"] == "sh_0000"
    assert shell_attributes["gen_ai.tool.type"] == "extension"
    assert json.loads(shell_attributes["gen_ai.tool.call.arguments"]) == {
        "code": "ls\ncat notes.txt"
    }
    assert json.loads(shell_attributes["gen_ai.tool.call.result"]) == {
        "logs": "notes.txt\ncat: notes.txt: Permission denied\n"
    }
    # A command that exits non-zero is the command's result, not a failure of the tool.
    assert "error.type" not in shell_attributes
    assert shell.status.status_code is StatusCode.UNSET

    assert _attributes(python)["gen_ai.tool.call.id"] == "ci_0002"
    assert json.loads(_attributes(python)["gen_ai.tool.call.result"]) == {"logs": "42\n"}
    assert shell.end_time is not None
    assert python.start_time is not None
    assert shell.end_time <= python.start_time


async def test_a_call_whose_outputs_were_not_asked_for_says_so(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    builder = StreamBuilder(response_id="resp_quiet", include_outputs=False).code_call("x = 1")
    spans = await _traced(_replayed(_wire(builder)), provider, exporter)
    tool = _one(spans, "execute_tool code_interpreter")
    assert [(e.name, dict(e.attributes or {})) for e in tool.events] == [
        (
            "respflow.code.outputs_missing",
            {"respflow.outputs_missing.reason": "include_not_requested"},
        )
    ]
    assert "error.type" not in _attributes(tool)


# -- errors and ends ---------------------------------------------------------------------


def _fail_the_call(event: Json) -> None:
    if event["type"] != "response.output_item.done":
        return
    item: Json = event["item"]
    if item["type"] == "code_interpreter_call":
        item["status"] = "failed"
        item["outputs"] = None


def _fail_the_response(event: Json) -> None:
    if event["type"] == "response.failed":
        event["response"]["error"] = {"code": "server_error", "message": "The server had an error"}
        for item in event["response"]["output"]:
            if item["type"] == "code_interpreter_call":
                item["status"] = "failed"


async def test_a_failed_call_and_a_failed_response_carry_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    wire = _wire(StreamBuilder(response_id="resp_failed").code_call("1/0"), end="failed")
    wire = _patched(_patched(wire, _fail_the_call), _fail_the_response)
    spans = await _traced(_replayed(wire), provider, exporter)
    tool, chat = _one(spans, "execute_tool code_interpreter"), _one(spans, "chat gpt-5")

    assert _attributes(tool)["error.type"] == "failed"
    assert tool.status.status_code is StatusCode.ERROR
    assert _attributes(chat)["error.type"] == "server_error"
    assert _attributes(chat)["gen_ai.response.finish_reasons"] == ("error",)
    assert chat.status.status_code is StatusCode.ERROR
    # The API's message can echo what was asked: only its code is recorded.
    assert "The server had an error" not in _everything_recorded(spans)


async def test_an_incomplete_response_gives_its_reason_as_the_finish_reason(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def cut_short(event: Json) -> None:
        if event["type"] == "response.incomplete":
            event["response"]["incomplete_details"] = {"reason": "max_output_tokens"}

    wire = _wire(StreamBuilder(response_id="resp_short").message("Once upon"), end="incomplete")
    spans = await _traced(_replayed(_patched(wire, cut_short)), provider, exporter)
    chat = _one(spans, "chat gpt-5")
    assert _attributes(chat)["gen_ai.response.finish_reasons"] == ("length",)
    assert "error.type" not in _attributes(chat)
    assert chat.status.status_code is StatusCode.UNSET


async def test_an_api_error_event_names_the_chat_spans_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    wire = _wire(StreamBuilder(response_id="resp_limited").code_call("x = 1"), end=None)[:5]
    wire.append(
        {
            "type": "error",
            "code": "rate_limit_exceeded",
            "message": "Rate limit reached for gpt-5 in organization org-secret",
            "param": None,
            "sequence_number": 5,
        }
    )
    spans = await _traced(_replayed(wire), provider, exporter)
    chat, tool = _one(spans, "chat gpt-5"), _one(spans, "execute_tool code_interpreter")
    assert _attributes(chat)["error.type"] == "rate_limit_exceeded"
    assert chat.status.status_code is StatusCode.ERROR
    [error] = [event for event in chat.events if event.name == "respflow.stream.error"]
    assert dict(error.attributes or {}) == {
        "respflow.error.code": "rate_limit_exceeded",
        "respflow.error.fatal": True,
    }
    assert "org-secret" not in _everything_recorded(spans)
    # The call the error cut off ends too, as not completed.
    assert _attributes(tool)["error.type"] == "incomplete"
    assert tool.status.status_code is StatusCode.ERROR


def _tools_stream() -> list[Json]:
    builder = (
        StreamBuilder(response_id="resp_cut")
        .shell_call(["echo hi"], outputs=[("hi\n", "", 0)])
        .code_call("print(2 + 2)", logs="4\n")
        .message("Four.")
    )
    return _wire(builder)


async def test_a_stream_cut_anywhere_ends_every_span_once_and_says_why(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    wire = _tools_stream()
    for cut in range(1, len(wire)):
        events = _replayed(wire[:cut])
        assert isinstance(events[-1], respflow.StreamTruncated)
        spans = await _traced(events, provider, exporter)
        chat = _one(spans, "chat gpt-5")
        assert _attributes(chat)["error.type"] == "truncated", cut
        assert chat.status.status_code is StatusCode.ERROR
        calls = {e.item_id: e for e in events if isinstance(e, CodeCompleted)}
        tools = [span for span in spans if span.name.startswith("execute_tool ")]
        assert len(tools) == sum(isinstance(e, CodeStarted) for e in events), cut
        for tool in tools:
            assert _parent_id(tool) == _id(chat)
            status = calls[_attributes(tool)["gen_ai.tool.call.id"]].status
            if status == "completed":
                assert "error.type" not in _attributes(tool), cut
            else:
                assert _attributes(tool)["error.type"] == status, cut
                assert tool.status.status_code is StatusCode.ERROR


async def test_a_sink_closed_early_ends_every_open_span_as_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    events = _replayed(_tools_stream())
    for cut in range(len(events)):
        before = len(exporter.get_finished_spans())
        sink = OtelSink(tracer_provider=provider)
        for event in events[:cut]:
            await sink.send(event)
        await sink.aclose()
        await sink.aclose()  # twice is harmless
        spans = exporter.get_finished_spans()[before:]
        if cut == 0:
            assert spans == ()
            continue
        done = {e.item_id for e in events[:cut] if isinstance(e, CodeCompleted)}
        for span in spans:
            call_id = _attributes(span).get("gen_ai.tool.call.id")
            if call_id in done:
                assert "error.type" not in _attributes(span), cut
            else:
                assert _attributes(span)["error.type"] == "sink_closed", (cut, span.name)
                assert span.status.status_code is StatusCode.ERROR


_ITEMS = st.lists(st.sampled_from(["code", "shell", "local shell", "message", "reasoning"]))


def _built(items: list[str]) -> StreamBuilder:
    builder = StreamBuilder(response_id="resp_any")
    for item in items:
        if item == "code":
            builder.code_call("print('hi')", logs="hi\n")
        elif item == "shell":
            builder.shell_call(["echo hi", "false"], outputs=[("hi\n", "", 0), ("", "", 1)])
        elif item == "local shell":
            builder.shell_call(["ls"], outputs=None, container_id=None)
        elif item == "message":
            builder.message("Here it is.")
        else:
            builder.reasoning("Thinking it over.")
    return builder


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=_ITEMS,
    end=st.sampled_from(["completed", "incomplete", "failed", None]),
    cut=st.integers(min_value=1, max_value=400),
    close_after=st.none() | st.integers(min_value=0, max_value=400),
)
async def test_any_response_cut_or_closed_anywhere_keeps_the_span_promises(
    anyio_backend: str,
    caplog: pytest.LogCaptureFixture,
    items: list[str],
    end: str | None,
    cut: int,
    close_after: int | None,
) -> None:
    provider, exporter, started = _recording()
    events = _replayed(_wire(_built(items), end=end)[:cut])
    sink = OtelSink(tracer_provider=provider)
    if close_after is None:
        assert await respflow.deliver(_aiter(events), sink) == []
    else:  # the sink closed before, or just as, the response ended
        events = events[:close_after]
        for event in events:
            await sink.send(event)
        await sink.aclose()

    _assert_each_span_ended_once(exporter, started)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]
    spans = exporter.get_finished_spans()
    if not events:
        assert spans == ()
        return
    [chat] = [span for span in spans if span.name.startswith("chat")]
    ended_well = isinstance(events[-1], respflow.ResponseCompleted | respflow.ResponseIncomplete)
    assert ("error.type" in _attributes(chat)) is not ended_well
    completed = {
        e.item_id for e in events if isinstance(e, CodeCompleted) and e.status == "completed"
    }
    tools = [span for span in spans if span.name.startswith("execute_tool ")]
    assert len(tools) == sum(isinstance(e, CodeStarted) for e in events)
    for tool in tools:
        assert _parent_id(tool) == _id(chat)
        finished = _attributes(tool)["gen_ai.tool.call.id"] in completed
        assert ("error.type" in _attributes(tool)) is not finished


async def test_each_response_through_one_sink_gets_its_own_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    first = _replayed(_wire(StreamBuilder(response_id="resp_a").code_call("a = 1")))
    second = _replayed(_wire(StreamBuilder(response_id="resp_b").code_call("b = 2")))
    spans = await _traced(first + second, provider, exporter)
    chats = _named(spans, "chat gpt-5")
    assert sorted(_attributes(chat)["gen_ai.response.id"] for chat in chats) == [
        "resp_a",
        "resp_b",
    ]
    tools = _named(spans, "execute_tool code_interpreter")
    assert {_parent_id(tool) for tool in tools} == {_id(chat) for chat in chats}


async def test_a_sink_failing_beside_it_adds_no_span_of_its_own(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # The pipeline reports a sink that failed before taking any event under no response.
    broken = MemorySink(fail_after=0)
    sink = OtelSink(tracer_provider=provider)
    assert len(await respflow.deliver(_paced(respflow.replay(SAMPLE)), broken, sink)) == 1
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == ["chat gpt-5", "execute_tool code_interpreter"]


# -- where the spans hang ----------------------------------------------------------------


async def test_spans_are_children_of_the_span_current_when_the_sink_was_made(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("the application")
    with tracer.start_as_current_span("handle request") as request:
        with_chat = OtelSink(tracer_provider=provider)
        without_chat = OtelSink(tracer_provider=provider, chat_span=False)
    with tracer.start_as_current_span("elsewhere") as elsewhere:
        events = _aiter(respflow.replay(SAMPLE))
        assert await respflow.deliver(events, with_chat, without_chat) == []

    spans = exporter.get_finished_spans()
    request_id = request.get_span_context().span_id
    chat = _one(spans, "chat gpt-5")
    assert _parent_id(chat) == request_id
    tools = _named(spans, "execute_tool code_interpreter")
    assert sorted(map(_parent_id, tools), key=str) == sorted([_id(chat), request_id], key=str)
    assert elsewhere.get_span_context().span_id not in map(_parent_id, spans)


async def test_a_sink_made_outside_any_span_makes_root_spans_or_hangs_them_where_told(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    spans = await _traced(respflow.replay(SAMPLE), provider, exporter)
    assert _parent_id(_one(spans, "chat gpt-5")) is None

    tracer = provider.get_tracer("the application")
    with tracer.start_as_current_span("job") as job:
        job_context = otel_context.get_current()
    spans = await _traced(respflow.replay(SAMPLE), provider, exporter, context=job_context)
    assert _parent_id(_one(spans, "chat gpt-5")) == job.get_span_context().span_id
    assert trace.get_current_span() is trace.INVALID_SPAN


# -- files -------------------------------------------------------------------------------


async def test_file_events_land_on_the_call_whose_container_holds_the_file(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    events = list(respflow.replay(SAMPLE))
    end = events.pop()
    rid, seq = end.response_id, end.sequence_number
    saved = FileSaved(
        response_id=rid,
        sequence_number=seq,
        cursor="",
        container_id="cntr_sample",
        file_id="cfile_sample_rolls",
        filename="dice_rolls.csv",
        location="respflow-files/resp_sample_dice/dice_rolls.csv",
        size=61,
        sha256="ab" * 32,
        media_type="text/csv",
        resolved_by="citation",
        path="/mnt/data/dice_rolls.csv",
    )
    failed = FileFailed(
        response_id=rid,
        sequence_number=seq,
        cursor="",
        container_id="cntr_elsewhere",
        file_id="cfile_gone",
        status=404,
        reason="the container expired",
        hint="download files within 20 minutes",
    )
    spans = await _traced([*events, saved, failed, end], provider, exporter)
    tool, chat = _one(spans, "execute_tool code_interpreter"), _one(spans, "chat gpt-5")

    [on_tool] = tool.events
    assert on_tool.name == "respflow.file.saved"
    assert dict(on_tool.attributes or {}) == {
        "respflow.container.id": "cntr_sample",
        "respflow.file.id": "cfile_sample_rolls",
        "respflow.file.name": "dice_rolls.csv",
        "respflow.file.path": "/mnt/data/dice_rolls.csv",
        "respflow.file.location": "respflow-files/resp_sample_dice/dice_rolls.csv",
        "respflow.file.size": 61,
        "respflow.file.sha256": "ab" * 32,
        "respflow.file.media_type": "text/csv",
        "respflow.file.resolved_by": "citation",
    }
    # The span still covers the call only; the file was saved after it.
    assert tool.end_time is not None
    assert tool.end_time <= on_tool.timestamp
    # No call of this response ran in that container: the response's span keeps it.
    [on_chat] = [event for event in chat.events if event.name == "respflow.file.failed"]
    assert dict(on_chat.attributes or {}) == {
        "respflow.container.id": "cntr_elsewhere",
        "respflow.file.id": "cfile_gone",
        "respflow.file.status": 404,
        "respflow.file.reason": "the container expired",
    }
    # A failed download is not a failed call.
    assert tool.status.status_code is StatusCode.UNSET


# -- by name -----------------------------------------------------------------------------


async def test_the_otel_sink_spec() -> None:
    assert "otel" in respflow.available_sinks()
    plain = respflow.sink_from_spec("otel")
    assert isinstance(plain, OtelSink)
    assert not plain.capture_content
    content = respflow.sink_from_spec("otel:content")
    assert isinstance(content, OtelSink)
    assert content.capture_content
    with pytest.raises(respflow.UsageError, match="otel:content"):
        respflow.sink_from_spec("otel:everything")


# -- live, over the mock Responses API ------------------------------------------------------


@pytest.fixture
async def mock(anyio_backend: str) -> AsyncIterator[MockServer]:
    async with MockServer(Recording.from_bytes(SAMPLE), files=FILES) as server:
        yield server


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
    ) as sdk:
        yield sdk


async def _traced_run(
    client: openai.AsyncOpenAI,
    sink: OtelSink,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> list[ReadableSpan]:
    """The spans one live response makes, files fetched on the way."""
    before = len(exporter.get_finished_spans())
    fetcher = respflow.FileFetcher(client, respflow.LocalStorage(tmp_path))
    async with respflow.stream(client, model="gpt-5", input="Roll dice", tools=CI_TOOLS) as events:
        assert await respflow.deliver(events, sink, processors=[fetcher]) == []
    return list(exporter.get_finished_spans()[before:])


def _scope(span: ReadableSpan) -> str:
    assert span.instrumentation_scope is not None
    return span.instrumentation_scope.name


def _chats(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.attributes and span.attributes.get("gen_ai.operation.name") == "chat"
    ]


async def test_a_live_response_is_traced_with_the_files_its_call_made(
    client: openai.AsyncOpenAI,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    spans = await _traced_run(client, OtelSink(tracer_provider=provider), exporter, tmp_path)
    [chat] = _chats(spans)
    assert chat.name == "chat gpt-5"
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.usage.input_tokens"] == 812
    assert chat.attributes["gen_ai.usage.output_tokens"] == 377
    [tool] = [span for span in spans if span.name == "execute_tool code_interpreter"]
    assert tool.parent is not None
    assert chat.context is not None
    assert tool.parent.span_id == chat.context.span_id
    saved = {
        (event.attributes or {}).get("respflow.file.resolved_by"): event
        for event in tool.events
        if event.name == "respflow.file.saved"
    }
    assert set(saved) == {"citation", "link", "image"}
    csv = dict(saved["citation"].attributes or {})
    assert csv["respflow.file.name"] == "dice_rolls.csv"
    assert csv["respflow.file.size"] == (FILES / "dice_rolls.csv").stat().st_size
    assert Path(str(csv["respflow.file.location"])).is_relative_to(tmp_path)


async def test_an_expired_container_is_a_failed_file_on_the_call(
    mock: MockServer,
    client: openai.AsyncOpenAI,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    mock.expire_containers()
    spans = await _traced_run(client, OtelSink(tracer_provider=provider), exporter, tmp_path)
    [tool] = [span for span in spans if span.name == "execute_tool code_interpreter"]
    failed = [dict(e.attributes or {}) for e in tool.events if e.name == "respflow.file.failed"]
    assert [f["respflow.file.status"] for f in failed] == [404, 404]
    assert all(f["respflow.container.id"] == "cntr_sample" for f in failed)
    assert "error.type" not in (tool.attributes or {})


def _instrumentor(module: str) -> Any:
    """The instrumentation's OpenAIInstrumentor, or a skip saying why it is not here."""
    try:
        return importlib.import_module(module).OpenAIInstrumentor()
    except ImportError as exc:
        if REQUIRED and module == OFFICIAL:
            raise
        pytest.skip(f"{module} cannot be imported here: {exc}")


async def test_with_the_official_instrumentation_its_chat_span_is_the_only_one(
    client: openai.AsyncOpenAI,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    instrumentor = _instrumentor(OFFICIAL)
    sink = OtelSink(tracer_provider=provider)
    instrumentor.instrument(tracer_provider=provider)
    try:
        assert official_instrumentation_active()
        spans = await _traced_run(client, sink, exporter, tmp_path)
    finally:
        instrumentor.uninstrument()
    [chat] = _chats(spans)
    assert _scope(chat) == OFFICIAL
    assert chat.kind is SpanKind.CLIENT
    [tool] = [span for span in spans if span.name == "execute_tool code_interpreter"]
    assert _scope(tool) == SCOPE
    assert {e.name for e in tool.events} == {"respflow.file.saved"}

    # Without it, in the same process, respflow's own chat span is back, with the usage.
    assert not official_instrumentation_active()
    spans = await _traced_run(client, sink, exporter, tmp_path)
    [chat] = _chats(spans)
    assert _scope(chat) == SCOPE
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.usage.output_tokens"] == 377


async def test_chat_span_true_or_false_overrides_the_detection(
    client: openai.AsyncOpenAI,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    instrumentor = _instrumentor(OFFICIAL)
    instrumentor.instrument(tracer_provider=provider)
    try:
        forced = await _traced_run(
            client, OtelSink(tracer_provider=provider, chat_span=True), exporter, tmp_path
        )
    finally:
        instrumentor.uninstrument()
    assert sorted(_scope(chat) for chat in _chats(forced)) == sorted([OFFICIAL, SCOPE])
    never = await _traced_run(
        client, OtelSink(tracer_provider=provider, chat_span=False), exporter, tmp_path
    )
    assert _chats(never) == []
    assert [span.name for span in never] == ["execute_tool code_interpreter"]


async def test_the_deprecated_instrumentation_is_detected_too(
    provider: TracerProvider, anyio_backend: str
) -> None:
    instrumentor = _instrumentor(DEPRECATED)
    assert not official_instrumentation_active()
    instrumentor.instrument(tracer_provider=provider)
    try:
        assert official_instrumentation_active()
    finally:
        instrumentor.uninstrument()
    assert not official_instrumentation_active()
