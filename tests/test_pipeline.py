"""Fan-out to sinks: slow, broken and required sinks, shutdown, cancellation, plugins."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import (
    CallbackSink,
    JsonlSink,
    LogSink,
    Pipeline,
    SinkFailed,
    StreamDropped,
    StreamError,
    StreamTruncated,
    UsageError,
    attach,
    deliver,
    sink_from_spec,
)
from respflow.testing import MemorySink

pytestmark = pytest.mark.anyio

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
EVENTS = list(respflow.replay(SAMPLE))


async def _events(pause: float = 0.0) -> AsyncIterator[respflow.Event]:
    for event in EVENTS:
        if pause:
            await anyio.sleep(pause)
        yield event


async def test_every_sink_gets_every_event_and_is_closed_once(anyio_backend: str) -> None:
    sinks = [MemorySink() for _ in range(3)]
    failures = await deliver(_events(), *sinks)
    assert failures == []
    for sink in sinks:
        assert sink.events == EVENTS
        assert sink.closed == 1


async def test_a_pipeline_used_outside_async_with_says_so_and_loses_nothing(
    anyio_backend: str,
) -> None:
    sink = MemorySink()
    pipeline = Pipeline(sink)
    with pytest.raises(respflow.UsageError, match="inside `async with Pipeline"):
        await pipeline.run(_events())
    with pytest.raises(respflow.UsageError, match="inside `async with Pipeline"):
        await pipeline.publish(EVENTS[0])
    async with pipeline:
        await pipeline.run(_events())
    assert sink.events == EVENTS
    with pytest.raises(respflow.UsageError, match="inside `async with Pipeline"):
        await pipeline.publish(EVENTS[0])


async def test_a_slow_sink_does_not_slow_a_fast_one_unless_it_blocks(
    anyio_backend: str,
) -> None:
    fast, slow = MemorySink(), MemorySink(delay=0.05)
    with anyio.fail_after(20):
        started = anyio.current_time()
        async with Pipeline(fast, attach(slow, policy="drop_oldest", buffer=4)) as pipeline:
            async for event in _events():
                await pipeline.publish(event)
            fast_done = anyio.current_time() - started
    # The fast sink had everything long before the slow one could have taken it all.
    assert fast.events == EVENTS
    assert fast_done < 0.05 * len(EVENTS) / 4
    dropped = [e for e in slow.events if isinstance(e, StreamDropped)]
    assert dropped
    received = [e for e in slow.events if not isinstance(e, StreamDropped)]
    assert len(received) + sum(d.count for d in dropped) == len(EVENTS)
    assert slow.events[-1] == EVENTS[-1]  # the newest, the end, is kept
    assert slow.closed == 1


async def test_block_loses_nothing(anyio_backend: str) -> None:
    slow = MemorySink(delay=0.002)
    async with Pipeline(attach(slow, policy="block", buffer=2)) as pipeline:
        await pipeline.run(_events())
    assert slow.events == EVENTS


async def test_a_slow_sink_with_disconnect_is_let_go(anyio_backend: str) -> None:
    fast, slow = MemorySink(), MemorySink(delay=0.05)
    async with Pipeline(fast, attach(slow, policy="disconnect", buffer=3)) as pipeline:
        await pipeline.run(_events())
    assert fast.events == EVENTS
    assert len(slow.events) < len(EVENTS)
    end = slow.events[-1]
    assert isinstance(end, StreamTruncated)
    assert "disconnected" in end.message
    assert slow.events[:-1] == EVENTS[: len(slow.events) - 1]  # nothing out of order
    assert slow.closed == 1


async def test_a_sink_that_raises_is_isolated_and_reported(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    good, broken = MemorySink(), MemorySink(fail_after=5)
    with caplog.at_level(logging.WARNING, logger="respflow"):
        failures = await deliver(_events(pause=0.001), good, attach(broken, name="broken"))
    assert [name for name, _ in failures] == ["broken"]
    assert "sink broken failed" in caplog.text
    # Reported to the others while the response runs (after its end it is only logged).
    reports = [e for e in good.events if isinstance(e, StreamError)]
    assert [r.code for r in reports] == ["sink_failed"]
    assert [e for e in good.events if not isinstance(e, StreamError)] == EVENTS
    assert len(broken.events) == 5
    assert broken.closed == 1
    cursors = [respflow.parse_cursor(e.cursor) for e in good.events]
    assert cursors == sorted(cursors)


async def test_a_required_sink_that_raises_stops_the_pipeline(anyio_backend: str) -> None:
    other, broken = MemorySink(delay=0.001), MemorySink(fail_after=3)
    with pytest.raises(SinkFailed, match="required sink MemorySink failed") as caught:
        async with Pipeline(other, attach(broken, required=True)) as pipeline:
            await pipeline.run(_events(pause=0.001))
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert other.closed == broken.closed == 1
    assert isinstance(other.events[-1], StreamTruncated)


async def test_cancellation_closes_every_sink_once_with_an_end(anyio_backend: str) -> None:
    sinks = [MemorySink(), MemorySink(delay=0.001)]
    with anyio.move_on_after(0.05):
        async with Pipeline(*sinks) as pipeline:
            await pipeline.run(_events(pause=0.005))
    for sink in sinks:
        assert sink.closed == 1
        end = sink.events[-1]
        assert isinstance(end, StreamTruncated)
        assert "pipeline stopped" in end.message
        assert len(sink.events) < len(EVENTS)


async def test_cancelling_one_pipeline_leaves_another_alone(anyio_backend: str) -> None:
    first, second = MemorySink(), MemorySink()

    async def one(sink: MemorySink, scope: anyio.CancelScope) -> None:
        with scope:
            await deliver(_events(pause=0.001), sink)

    cancelled = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(one, first, cancelled)
        group.start_soon(one, second, anyio.CancelScope())
        with anyio.fail_after(10):  # cancel mid-response, however busy the machine is
            while not first.events:
                await anyio.sleep(0.001)
        cancelled.cancel()
    assert isinstance(first.events[-1], StreamTruncated)
    assert second.events == EVENTS


async def test_processors_run_in_order(anyio_backend: str) -> None:
    sink = MemorySink()
    rewriter = respflow.LinkRewriter()
    await deliver(_events(), sink, processors=[rewriter])
    [message] = [e for e in sink.events if isinstance(e, respflow.MessageCompleted)]
    assert "sandbox:" not in message.text
    assert sink.events[-1].type == "response.completed"


async def test_jsonl_sink_writes_whole_lines(anyio_backend: str, tmp_path: Path) -> None:
    for batch in (1, 7):
        path = tmp_path / f"events-{batch}.jsonl"
        await deliver(_events(), JsonlSink(path, batch=batch))
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b""
        assert [respflow.decode_event(line) for line in lines[:-1]] == EVENTS


async def test_log_sink_binds_ids_and_redacts_secrets(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = StreamError(
        response_id="resp_1",
        sequence_number=1,
        cursor="1-0",
        code="x",
        message="key sk-abcdefghijklmnop and Bearer abcdefghijklmnop leaked",
        fatal=False,
    )
    logger = logging.getLogger("test.respflow.events")
    with caplog.at_level(logging.INFO, logger="test.respflow.events"):
        await deliver(_events(), LogSink(logger))
        await deliver(_one(secret), LogSink(logger))
    names = [r.getMessage() for r in caplog.records]
    assert "code.completed" in names
    assert "code.delta" not in names  # deltas are left out by default
    record = caplog.records[names.index("code.completed")]
    assert record.respflow["response_id"] == "resp_sample_dice"  # type: ignore[attr-defined]
    logged = msgspec.json.encode([r.respflow for r in caplog.records]).decode()  # type: ignore[attr-defined]
    assert "sk-abcdefghijklmnop" not in logged
    assert "Bearer abcdefghijklmnop" not in logged


async def _one(event: respflow.Event) -> AsyncIterator[respflow.Event]:
    yield event


async def test_callback_sink_takes_plain_and_async_functions(anyio_backend: str) -> None:
    plain: list[str] = []
    awaited: list[str] = []

    async def record(event: respflow.Event) -> None:
        awaited.append(event.type)

    await deliver(_events(), CallbackSink(lambda e: plain.append(e.type)), CallbackSink(record))
    assert plain == awaited == [e.type for e in EVENTS]


def test_sinks_by_spec(tmp_path: Path) -> None:
    assert "jsonl" in respflow.available_sinks()
    sink = sink_from_spec(f"jsonl:{tmp_path / 'x.jsonl'}")
    assert isinstance(sink, JsonlSink)
    assert sink.path == tmp_path / "x.jsonl"
    assert isinstance(sink_from_spec("log"), LogSink)
    with pytest.raises(UsageError, match=r"no sink is called .nope.; available: .*jsonl"):
        sink_from_spec("nope:x")
    with pytest.raises(UsageError, match="log takes no argument"):
        sink_from_spec("log:loud")


def test_the_cli_delivers_to_sinks_by_spec(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "respflow", "replay", "--format", "jsonl", "--sink", f"jsonl:{out}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == done.stdout
    assert [respflow.decode_event(line) for line in out.read_bytes().splitlines()] == EVENTS
    unknown = subprocess.run(
        [sys.executable, "-m", "respflow", "replay", "--sink", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 1
    assert "available: jsonl, log" in unknown.stderr


async def test_log_sink_speaks_structlog(anyio_backend: str) -> None:
    import structlog.testing

    with structlog.testing.capture_logs() as logs:
        await deliver(_events(), LogSink())
    completed = [entry for entry in logs if entry["event"] == "code.completed"]
    assert len(completed) == 1
    assert completed[0]["response_id"] == "resp_sample_dice"
    assert completed[0]["item_id"] == "ci_0001"
    assert completed[0]["log_level"] == "info"
    assert not [entry for entry in logs if entry["event"].endswith(".delta")]


def _in_order(got: Sequence[respflow.Event]) -> bool:
    """``got`` is some of the events, none twice, in their order (cursors aside)."""
    rest = iter(_bare(EVENTS))
    return all(any(event == candidate for candidate in rest) for event in _bare(got))


sink_specs = st.lists(
    st.tuples(
        st.sampled_from(["block", "drop_oldest", "disconnect"]),
        st.sampled_from([0.0, 0.0002]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
        st.integers(min_value=1, max_value=8),
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=sink_specs)
async def test_fan_out_keeps_its_promises_for_any_mix_of_sinks(
    anyio_backend: str, specs: list[tuple[str, float, int | None, int]]
) -> None:
    sinks = [MemorySink(delay=delay, fail_after=fail) for _, delay, fail, _ in specs]
    attached = [
        attach(sink, policy=policy, buffer=buffer)  # type: ignore[arg-type]
        for sink, (policy, _, _, buffer) in zip(sinks, specs, strict=True)
    ]
    await deliver(_events(), *attached)
    for sink, (policy, _, fail, _) in zip(sinks, specs, strict=True):
        assert sink.closed == 1
        got = [e for e in sink.events if not isinstance(e, StreamDropped | StreamError)]
        if got and isinstance(got[-1], StreamTruncated):  # its own end: let go or cut short
            got.pop()
        cursors = [respflow.parse_cursor(e.cursor) for e in sink.events]
        assert cursors == sorted(cursors)
        if fail is not None and fail < len(EVENTS):
            assert len(got) <= fail
            assert _in_order(got)
            continue
        # Another sink's failure report takes a place (a cursor) in the stream, so the
        # events after it may be renumbered: compare what they are, the order is above.
        bare, events = _bare(got), _bare(EVENTS)
        if policy == "block":
            assert bare == events
        elif policy == "drop_oldest":
            missed = sum(e.count for e in sink.events if isinstance(e, StreamDropped))
            reports = sum(1 for _, _, fail, _ in specs if fail is not None)  # may be dropped too
            assert len(EVENTS) <= len(got) + missed <= len(EVENTS) + reports
            assert bare[-1] == events[-1]
            assert _in_order(got)
        else:
            assert bare == events[: len(bare)]


def _bare(events: Sequence[respflow.Event]) -> list[respflow.Event]:
    return [msgspec.structs.replace(e, cursor="") for e in events]
