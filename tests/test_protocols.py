"""The UI protocols: respflow events as AG-UI 1.0 events and Vercel UI message stream chunks.

What a client of either protocol sees is checked by the protocols' own code, in Node
(tests/node/check.mjs: ``uiMessageChunkSchema`` and ``readUIMessageStream`` from ``ai``,
``EventSchema``, ``enforceEvents``, ``verifyEvents`` and a real agent's reducer from
``@ag-ui/client``), once per set of streams: every real recording in
``../shared/fixtures/external``, the bundled sample, generated streams (shell calls,
errors, truncation, hostile event orders), whole and resumed from every cursor, and the
streams ``respflow.app`` serves over loopback HTTP. Those tests need ``npm ci`` in
tests/node; without it they are skipped, unless ``RESPFLOW_NODE_TEST=required``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import MemoryBroker, Runner
from respflow import _events as ev
from respflow._events import parse_cursor
from respflow._protocols._steps import dump_json
from respflow._protocols.agui import AGUIEncoder
from respflow._protocols.stream import ProtocolStream
from respflow._protocols.vercel import VercelEncoder
from respflow.testing import LoopbackServer, MockServer, Recording, StreamBuilder, to_sse

from .browser import CHROMIUM, launch
from .external import recordings

Json = dict[str, Any]
T = TypeVar("T")

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")
SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE_SSE = SAMPLES.joinpath("code_interpreter.sse").read_bytes()
FILES = Path(str(SAMPLES.joinpath("files")))
TOKEN = "test-token-123"
SECRET = "a-secret-of-32-bytes-for-tests!!"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}

# .ci/run sets RESPFLOW_NODE_TEST=required (after `npm ci` in tests/node): there a missing
# Node or node_modules is a failure, not a skip.
needs_node = pytest.mark.skipif(
    os.environ.get("RESPFLOW_NODE_TEST") != "required"
    and (NODE is None or not (NODE_DIR / "node_modules").is_dir()),
    reason="the protocols' own validators are not installed: run `npm ci` in tests/node "
    "(Node 20+); RESPFLOW_NODE_TEST=required makes this a failure",
)


# -- running the protocols' own code ------------------------------------------------------


async def node_check(doc: Json) -> Json:
    """tests/node/check.mjs over ``doc`` (one Node process for the whole set); fails the
    test with every failure it reports."""
    assert NODE is not None, "node is not installed"
    done = await anyio.run_process(
        [NODE, str(NODE_DIR / "check.mjs")],
        input=dump_json(doc),
        cwd=NODE_DIR,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    report: Json = json.loads(done.stdout)
    failures = report["failures"]
    shown = "\n".join(f"{f['name']}: {f['check']}: {f['error'][:600]}" for f in failures[:15])
    assert not failures, f"{len(failures)} failures, the first:\n{shown}"
    return report


def by_response(events: Sequence[ev.Event]) -> list[list[ev.Event]]:
    """The events of each response, in order (as the app serves them: one per URL)."""
    groups: dict[str, list[ev.Event]] = {}
    for event in events:
        groups.setdefault(event.response_id, []).append(event)
    return list(groups.values())


def vercel_chunks(events: Sequence[ev.Event], **options: Any) -> list[Json]:
    encoder = VercelEncoder(**options)
    return [chunk for event in events for chunk in encoder.feed(event)] + encoder.close()


def agui_run(
    name: str,
    events: Sequence[ev.Event],
    *,
    apply: Callable[[int], bool] = lambda _: False,
    every: bool = True,
) -> Json:
    """One response as AG-UI, with the prelude a reader gets resuming after each event
    (``every``), or after those where a real agent's result is compared (``apply``).

    A prelude's snapshot is checked against the schema where what is open changes; between
    those (a run of deltas) it differs only in the length of a text, and the run is still
    verified at every cursor."""
    encoder = AGUIEncoder()
    whole: list[Json] = []
    resumes = []
    schema = turns(max(1, len(events)))(events)
    for n, event in enumerate(events):
        whole += encoder.feed(event)
        if every or apply(n):
            prelude = encoder.resume(event.response_id)
            resume = {"at": len(whole), "prelude": prelude, "apply": apply(n)}
            resumes.append({**resume, "schema": n in schema})
    whole += encoder.close()
    return {"name": name, "events": whole, "resumes": resumes}


def protocol_doc(
    streams: Mapping[str, Sequence[ev.Event]],
    *,
    applied: Callable[[Sequence[ev.Event]], set[int]] = lambda _: set(),
) -> Json:
    """Everything check.mjs should check of these event streams: each whole stream in both
    protocols, and each of its responses as an AG-UI run resumed after every event; at the
    positions ``applied`` picks, also what a real agent ends with (three runs a cursor)."""
    doc: Json = {"vercel": [], "agui": []}
    for name, events in streams.items():
        doc["vercel"].append({"name": name, "chunks": vercel_chunks(events)})
        encoder = AGUIEncoder()
        whole = [e for event in events for e in encoder.feed(event)] + encoder.close()
        doc["agui"].append({"name": f"{name} (whole)", "events": whole})
        for n, response in enumerate(by_response(events)):
            chosen = applied(response)
            doc["agui"].append(agui_run(f"{name} #{n}", response, apply=chosen.__contains__))
    return doc


_DELTAS = (ev.TextDelta, ev.CodeDelta, ev.ReasoningDelta, ev.CodeOutput)


def turns(most: int) -> Callable[[Sequence[ev.Event]], set[int]]:
    """Up to ``most`` positions, spread out, next to which what is open changes (between
    them a resume differs only in how much text came before)."""

    def pick(events: Sequence[ev.Event]) -> set[int]:
        marks = {j for i, e in enumerate(events) if not isinstance(e, _DELTAS) for j in (i - 1, i)}
        found = sorted(marks & set(range(len(events))))
        return set(found[:: max(1, -(-len(found) // most))])

    return pick


# -- streams to check ----------------------------------------------------------------------


def replayed(data: bytes, **options: Any) -> list[ev.Event]:
    return list(respflow.replay(data, **options))


def builder_streams() -> dict[str, list[ev.Event]]:
    """Generated streams: every item kind, each way a response can end, and the cut-offs."""

    def full(response_id: str) -> StreamBuilder:
        b = StreamBuilder(response_id=response_id)
        b.reasoning("Plan: list the files, then chart them.")
        b.shell_call(
            ["ls -la /mnt/data", 'python -c "print(\\"hi\\")"'],
            outputs=[("total 8\nreport.csv\n", "", 0), ("", "Traceback: boom\n", 1)],
        )
        b.code_call(
            'print("a \\"quoted\\" line")\n# ünïcödé ✓ \\ backslash',
            logs='a "quoted" line\n',
            images=["data:image/png;base64,iVBORw0KGgo=", "https://example.test/chart.png"],
        )
        b.message(
            "See [the report](sandbox:/mnt/data/report.csv) and "
            "[a source](https://example.test/page).",
            annotations=[
                {
                    "type": "container_file_citation",
                    "container_id": "cntr_sample",
                    "file_id": "cfile_1",
                    "filename": "report.csv",
                    "start_index": 4,
                    "end_index": 47,
                },
                {
                    "type": "url_citation",
                    "url": "https://example.test/page",
                    "title": "A page",
                    "start_index": 52,
                    "end_index": 90,
                },
            ],
        )
        return b

    streams: dict[str, list[ev.Event]] = {}
    for end in ("completed", "incomplete", "failed", None):
        events = full(f"resp_{end}").events(end=end)
        streams[f"generated, ends {end}"] = replayed(to_sse(events))
        if end == "completed":  # cut at every third wire event: truncated mid-item
            for cut in range(3, len(events) - 1, 3):
                streams[f"generated, cut after {cut}"] = replayed(to_sse(events[:cut]))
    local = StreamBuilder(response_id="resp_local").shell_call(["echo hi"], outputs=None)
    streams["generated, local shell"] = replayed(to_sse(local.message("done").events()))
    failing = full("resp_error").events(end=None)
    failing.append(
        {
            "type": "error",
            "sequence_number": len(failing),
            "code": "server_error",
            "message": "boom",
        }
    )
    streams["generated, API error mid-stream"] = replayed(to_sse(failing))
    background = StreamBuilder(response_id="resp_bg", background=True, include_outputs=False)
    background.code_call("print(1)", logs="1\n").message("one")
    streams["generated, background without outputs"] = replayed(to_sse(background.events()))
    response = full("resp_whole").response()
    streams["generated, non-streaming response"] = replayed(
        json.dumps(response).encode(), format="response"
    )
    return streams


TEXTS = ["", "a", "héllo ✓", 'say "hi"\n', "back\\slash", "\u2028", "tab\there", "x" * 40]


def hostile_events(draw: Callable[[Sequence[Any]], Any], response_id: str) -> list[ev.Event]:
    """A response's events in an order the assembler would never produce, from a small pool
    of ids and positions: repeats, deltas after their done, items never added, text that
    disagrees with its deltas, an end or none, events after the end, ids shared by items."""
    events: list[ev.Event] = []

    def add(cls: type[ev.Event], **fields: Any) -> None:
        seq = len(events)
        events.append(
            cls(response_id=response_id, sequence_number=seq, cursor=f"{seq}-0", **fields)
        )

    ids = ["item_a", "item_b", ""]
    if draw([True, False]):
        add(ev.ResponseStarted, model=draw(["gpt-5", None]))
    for _ in range(draw([0, 2, 5, 9, 14])):
        oi = draw([0, 1, 2])
        item = {"item_id": draw(ids), "output_index": oi}
        kind = draw(
            [
                "text.delta", "text.done", "message.completed", "reasoning.delta",
                "reasoning.done", "item.completed", "code.started", "code.delta", "code.done",
                "code.output", "code.completed", "file.saved", "file.cited", "file.link",
                "stream.error", "stream.gap", "unknown",
            ]
        )  # fmt: skip
        text = draw(TEXTS)
        if kind == "text.delta":
            add(ev.TextDelta, **item, content_index=draw([0, 1]), delta=text)
        elif kind == "text.done":
            add(ev.TextDone, **item, content_index=draw([0, 1]), text=text)
        elif kind == "message.completed":
            notes = draw(
                [[], [{"type": "url_citation", "url": "https://example.test", "title": "t"}]]
            )
            add(ev.MessageCompleted, **item, status="completed", text=text, annotations=notes)
        elif kind == "reasoning.delta":
            add(ev.ReasoningDelta, **item, delta=text, index=draw([0, 1]))
        elif kind == "reasoning.done":
            add(ev.ReasoningDone, **item, text=text, index=draw([0, 1]))
        elif kind == "item.completed":
            itype = draw(["reasoning", "web_search_call"])
            add(ev.ItemCompleted, **item, item_type=itype, status=None, item={"type": itype})
        elif kind == "code.started":
            add(
                ev.CodeStarted,
                **item,
                container_id=draw(["cntr_1", None]),
                tool=draw(["shell", "code_interpreter"]),
            )
        elif kind == "code.delta":
            add(ev.CodeDelta, **item, delta=text)
        elif kind == "code.done":
            add(ev.CodeDone, **item, code=text)
        elif kind == "code.output":
            add(ev.CodeOutput, **item, delta=text, stream=draw(["stdout", "stderr"]))
        elif kind == "code.completed":
            outputs = draw(
                [
                    None,
                    [],
                    [
                        {"type": "logs", "logs": text},
                        {"type": "image", "url": "data:image/png;base64,AA=="},
                    ],
                ]
            )
            add(
                ev.CodeCompleted,
                **item,
                status=draw(["completed", "failed", "incomplete"]),
                code=text,
                outputs=outputs,
                container_id="cntr_1",
            )
        elif kind == "file.saved":
            url = draw([None, "/files/resp/report.csv?sig=x", "/files/resp/chart.png?sig=y"])
            add(
                ev.FileSaved,
                container_id=draw(["cntr_1", None]),
                file_id="cfile_1",
                filename=draw(["report.csv", "chart.png", "noext"]),
                location=url or "/srv/x",
                size=3,
                sha256="0" * 64,
                url=url,
            )
        elif kind == "file.cited":
            add(
                ev.FileCited,
                **item,
                content_index=0,
                kind="container_file_citation",
                file_id="cfile_1",
                filename=draw(["report.csv", None]),
                start_index=0,
                end_index=1,
                container_id="cntr_1",
            )
        elif kind == "file.link":
            add(
                ev.FileLink,
                **item,
                content_index=0,
                path="/mnt/data/report.csv",
                start_index=0,
                end_index=1,
                container_id="cntr_1",
            )
        elif kind == "stream.error":
            add(ev.StreamError, code="boom", message=text or "boom", fatal=draw([True, False]))
        elif kind == "stream.gap":
            add(ev.StreamGap, expected=1, received=3)
        else:
            add(ev.Unknown, raw={"type": "response.something_new"})
    end = draw(["completed", "incomplete", "failed", "truncated", None])
    if end == "completed":
        add(ev.ResponseCompleted, usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7})
    elif end == "incomplete":
        add(ev.ResponseIncomplete, incomplete_details={"reason": "max_output_tokens"})
    elif end == "failed":
        add(ev.ResponseFailed, error=draw([None, {"code": "server_error", "message": "it broke"}]))
    elif end == "truncated":
        add(ev.StreamTruncated, last_sequence_number=3, message="cut")
    if end is not None and draw([False, True]):
        add(ev.TextDelta, item_id="late", output_index=5, content_index=0, delta="after the end")
    return events


def hostile_streams(count: int, seed: int = 14) -> dict[str, list[ev.Event]]:
    rnd = random.Random(seed)
    return {f"hostile {n}": hostile_events(rnd.choice, f"resp_h{n}") for n in range(count)}


# -- the protocols' rules, in Python (for properties over many inputs) --------------------

_AGUI_KINDS = {
    "TEXT_MESSAGE": "text",
    "TOOL_CALL": "call",
    "REASONING_MESSAGE": "reasoning",
}


def agui_problems(events: Sequence[Json]) -> list[str]:
    """What ``verifyEvents`` would refuse in ``events`` (the rules respflow's runs touch):
    a run starts first and ends once, every START has its END before the run ends, and
    nothing continues what is not open."""
    problems: list[str] = []
    state = "before"
    open_: dict[str, set[str]] = {"text": set(), "call": set(), "reasoning": set(), "span": set()}
    for n, event in enumerate(events):
        kind = event["type"]
        if kind == "RUN_STARTED":
            if state == "running":
                problems.append(f"{n}: RUN_STARTED in a running run")
            state = "running"
            for ids in open_.values():
                ids.clear()
            continue
        if state != "running":
            problems.append(f"{n}: {kind} outside a run")
            continue
        if kind in {"RUN_FINISHED", "RUN_ERROR"}:
            if kind == "RUN_FINISHED" and any(open_.values()):
                problems.append(f"{n}: RUN_FINISHED with {open_} open")
            state = "ended"
            continue
        family, _, step = kind.rpartition("_")
        group = "span" if kind in {"REASONING_START", "REASONING_END"} else _AGUI_KINDS.get(family)
        if group is None or step not in {"START", "CONTENT", "ARGS", "END"}:
            continue
        key = str(event.get("messageId", event.get("toolCallId")))
        if step == "START":
            if key in open_[group]:
                problems.append(f"{n}: {kind} {key} already open")
            open_[group].add(key)
        elif key not in open_[group]:
            problems.append(f"{n}: {kind} {key} not open")
        elif step == "END":
            open_[group].discard(key)
    if state == "running":
        problems.append("the stream ends in a running run")
    return problems


def vercel_problems(chunks: Sequence[Json]) -> list[str]:
    """What ``readUIMessageStream`` would refuse (or hang on): deltas of parts never
    started, outputs of unknown calls, chunks after the end, and no end at all."""
    problems: list[str] = []
    texts: set[str] = set()
    reasoning: set[str] = set()
    inputs: set[str] = set()
    calls: set[str] = set()
    ended = failed = False
    for n, chunk in enumerate(chunks):
        kind = chunk["type"]
        if kind == "start":
            ended = failed = False
            continue
        if ended:
            problems.append(f"{n}: {kind} after the end")
        if kind in {"finish", "abort"}:
            ended = True
        elif kind == "error":
            failed = True  # the client stops here; a finish may follow
        elif kind in {"text-start", "reasoning-start"}:
            (texts if kind == "text-start" else reasoning).add(chunk["id"])
        elif kind in {"text-delta", "text-end", "reasoning-delta", "reasoning-end"}:
            active = texts if kind.startswith("text") else reasoning
            if chunk["id"] not in active:
                problems.append(f"{n}: {kind} of {chunk['id']} not started")
            elif kind.endswith("end"):
                active.discard(chunk["id"])
        elif kind == "tool-input-start":
            inputs.add(chunk["toolCallId"])
            calls.add(chunk["toolCallId"])
        elif kind == "tool-input-delta" and chunk["toolCallId"] not in inputs:
            problems.append(f"{n}: input delta of {chunk['toolCallId']} not streaming")
        elif kind == "tool-input-available":
            inputs.discard(chunk["toolCallId"])
        elif kind == "tool-output-available" and chunk["toolCallId"] not in calls:
            problems.append(f"{n}: output of unknown call {chunk['toolCallId']}")
    if chunks and not (ended or failed):
        problems.append("no end")
    return problems


def sse_frames(data: bytes) -> list[tuple[str | None, str]]:
    """(id, data) of each frame of a server-sent event stream with data."""
    frames = []
    for block in data.decode().split("\n\n"):
        # Lines end at \n only: str.splitlines would also split at U+2028 inside the JSON.
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in fields:
            frames.append((fields.get("id"), fields["data"]))
    return frames


# -- properties ----------------------------------------------------------------------------


@st.composite
def hostile(draw: st.DrawFn) -> list[ev.Event]:
    return hostile_events(lambda options: draw(st.sampled_from(list(options))), "resp_h")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_any_event_order_gives_streams_both_protocols_accept(events: list[ev.Event]) -> None:
    chunks = vercel_chunks(events)
    assert vercel_problems(chunks) == [], chunks
    run = agui_run("hostile", events, apply=lambda _: False)
    assert agui_problems(run["events"]) == [], run["events"]
    for resume in run["resumes"]:
        resumed = resume["prelude"] + run["events"][resume["at"] :]
        assert agui_problems(resumed) == [], (resume, run["events"])


@st.composite
def generated(draw: st.DrawFn) -> list[ev.Event]:
    streams = builder_streams_cached()
    return streams[draw(st.sampled_from(sorted(streams)))]


_BUILT: dict[str, list[ev.Event]] = {}


def builder_streams_cached() -> dict[str, list[ev.Event]]:
    if not _BUILT:
        _BUILT.update(builder_streams())
    return _BUILT


@pytest.mark.parametrize("protocol", ["vercel", "ag-ui"])
@settings(max_examples=80, deadline=None)
@given(events=st.one_of(generated(), hostile()), data=st.data())
def test_a_reader_resuming_after_any_frame_gets_exactly_what_it_missed(
    protocol: str, events: list[ev.Event], data: st.DataObject
) -> None:
    whole_stream = ProtocolStream(protocol)
    per_event = [sse_frames(whole_stream.feed(event)) for event in events]
    tail = sse_frames(whole_stream.close())
    ids = [frame_id for frames in per_event for frame_id, _ in frames]
    assert None not in ids
    assert len(ids) == len(set(ids)), "frame ids are unique"
    if not ids:
        return
    last_id = data.draw(st.sampled_from(ids))
    at = next(j for j, frames in enumerate(per_event) if last_id in [i for i, _ in frames])
    n = [i for i, _ in per_event[at]].index(last_id)

    stream = ProtocolStream(protocol, after=last_id)
    resumed = sse_frames(b"".join(stream.feed(event) for event in events) + stream.close())

    after = [frame for frames in per_event[at + 1 :] for frame in frames] + tail
    if protocol == "vercel":  # exactly the frames after the last one it got
        assert resumed == per_event[at][n + 1 :] + after
        return
    # AG-UI: the prelude of what came before (no ids: the reader keeps its place), then
    # the events after its cursor; cut inside an event's frames, that event again.
    whole_event_seen = n == len(per_event[at]) - 1
    before = events[: at + 1] if whole_event_seen else events[:at]
    earlier = AGUIEncoder()
    for event in before:
        earlier.feed(event)
    prelude = [(None, st_dump(event)) for event in earlier.resume(events[at].response_id)]
    assert resumed == prelude + (after if whole_event_seen else per_event[at] + after)


def st_dump(payload: Json) -> str:
    return dump_json(payload).decode()


# -- what a client shows ---------------------------------------------------------------------


def shown(events: Sequence[ev.Event]) -> dict[str, Any]:
    """What each protocol's client shows of ``events``: each text, reasoning and tool call
    by id (the deltas joined), in Vercel and in AG-UI."""
    vercel: dict[str, Any] = {}
    for chunk in vercel_chunks(events):
        kind = chunk["type"]
        if kind in {"text-delta", "reasoning-delta"}:
            vercel[chunk["id"]] = vercel.get(chunk["id"], "") + chunk["delta"]
        elif kind == "tool-input-available":
            vercel[chunk["toolCallId"]] = (chunk["toolName"], chunk["input"])
    agui: dict[str, Any] = {}
    encoder = AGUIEncoder()
    for out in [e for event in events for e in encoder.feed(event)] + encoder.close():
        if out["type"] in {"TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT"}:
            agui[out["messageId"]] = agui.get(out["messageId"], "") + out["delta"]
        elif out["type"] == "TOOL_CALL_START":
            agui[out["toolCallId"]] = out["toolCallName"]
    return {"vercel": vercel, "agui": agui}


def test_a_repeated_done_does_not_show_its_text_twice() -> None:
    # Events from elsewhere (a JSONL a user wrote, two sources merged) may say a part is
    # done twice; the client must not get its text a second time.
    b = StreamBuilder(response_id="resp_twice").reasoning("Think once.").message("Say it once.")
    events = replayed(to_sse(b.events()))
    end = events.pop()
    for event in [e for e in events if isinstance(e, ev.TextDone | ev.ReasoningDone)]:
        seq = event.sequence_number
        events.append(msgspec.structs.replace(event, cursor=f"{seq}-9"))
    seen = shown([*events, end])
    assert set(seen["vercel"].values()) == {"Think once.", "Say it once."}
    assert set(seen["agui"].values()) == {"Think once.", "Say it once."}


def test_a_non_streaming_response_shows_its_reasoning_and_names_its_shell_call() -> None:
    b = StreamBuilder(response_id="resp_whole").reasoning("A plan.")
    b.shell_call(["ls"], outputs=[("a.txt\n", "", 0)]).message("Done.")
    seen = shown(replayed(json.dumps(b.response()).encode(), format="response"))
    assert seen["vercel"]["rs_0000:summary:0"] == "A plan."
    assert seen["vercel"]["sh_0001"] == ("shell", {"containerId": "cntr_sample", "code": "ls"})
    assert seen["agui"]["rs_0000:summary:0"] == "A plan."
    assert seen["agui"]["sh_0001"] == "shell"


# -- the protocols' own code ---------------------------------------------------------------


@functools.cache
def recorded_streams() -> dict[str, list[ev.Event]]:
    streams = {"the bundled sample": replayed(SAMPLE_SSE)}
    for recording in recordings():
        kind = "response" if recording.kind == "response" else None
        streams[recording.source] = replayed(recording.data, format=kind)
    return streams


@needs_node
@pytest.mark.anyio
async def test_every_recording_and_generated_stream_is_what_the_protocols_own_code_accepts(
    anyio_backend: str,
) -> None:
    """Every frame against the schemas; every AG-UI run through ``verifyEvents`` whole and
    resumed after every event (its prelude, then the events after the cursor)."""
    if anyio_backend != "asyncio":
        pytest.skip("the streams are the same on every backend: checked once")
    streams = {**recorded_streams(), **builder_streams_cached(), **hostile_streams(120)}
    report = await node_check(protocol_doc(streams))
    counts = report["counts"]
    assert counts["vercelStreams"] == len(streams)
    assert counts["aguiResumes"] == sum(len(events) for events in streams.values())


@needs_node
@pytest.mark.anyio
async def test_a_resumed_ag_ui_client_ends_with_what_it_would_have_had(anyio_backend: str) -> None:
    """A real agent (``runAgent``: enforcement, ``verifyEvents``, the default reducer) that
    resumes, whether it kept its messages or lost them, ends with the same messages as one
    that never left. Checked where what is open changes (between those, a resume differs
    only in how much text came before) in the sample and the generated streams: reasoning,
    shell and code calls, citations, every end, errors, cut-offs."""
    if anyio_backend != "asyncio":
        pytest.skip("the streams are the same on every backend: checked once")
    generated = {"the bundled sample": replayed(SAMPLE_SSE), **builder_streams_cached()}
    # The cut-offs are prefixes of one stream: a few of them say what all would.
    chosen = {k: v for n, (k, v) in enumerate(generated.items()) if "cut" not in k or n % 6 == 0}
    runs = []
    for name, events in chosen.items():
        for n, response in enumerate(by_response(events)):
            where = turns(8)(response)
            runs.append(agui_run(f"{name} #{n}", response, apply=where.__contains__, every=False))
    report = await node_check({"agui": runs})
    assert report["counts"]["aguiApplied"] >= 5 * len(chosen)


# -- through respflow.app, over real loopback HTTP -----------------------------------------


@dataclass
class Gateway:
    http: httpx2.AsyncClient
    app: respflow.App
    url: str
    files: Path

    async def frames(self, form: str, **headers: str) -> tuple[httpx2.Headers, bytes]:
        with anyio.fail_after(30):
            answer = await self.http.get(f"{self.url}&format={form}", headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.headers, answer.content


@pytest.fixture
async def gateway(anyio_backend: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    broker = MemoryBroker()
    async with (
        MockServer(Recording.from_bytes(SAMPLE_SSE), files=FILES) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        Runner(client, broker) as runner,
    ):
        app = respflow.app(broker, runner=runner, files=tmp_path, secret=SECRET, token=TOKEN)
        async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
            started = await http.post(
                "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert started.status_code == 201, started.text
            url = started.json()["events_url"]
            # Follow it to its end once, so every reader below reads a finished log.
            await http.get(url)
            yield Gateway(http, app, url, tmp_path)


def _data(frames: list[tuple[str | None, str]]) -> list[Json]:
    return [json.loads(data) for _, data in frames if data != "[DONE]"]


@pytest.mark.anyio
async def test_the_events_route_speaks_each_protocol_with_its_headers(gateway: Gateway) -> None:
    headers, body = await gateway.frames("vercel")
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert headers["cache-control"] == "no-cache"
    assert body.endswith(b"data: [DONE]\n\n")
    chunks = _data(sse_frames(body))
    assert [chunks[0]["type"], chunks[-1]["type"]] == ["start", "finish"]
    headers, body = await gateway.frames("ag-ui")
    assert headers["content-type"].startswith("text/event-stream")
    events = _data(sse_frames(body))
    assert [events[0]["type"], events[-1]["type"]] == ["RUN_STARTED", "RUN_FINISHED"]
    assert events[0]["protocolVersion"] == "1.0"
    # Nothing the server keeps leaks, and no file travels as base64: files are served URLs.
    for form in ("vercel", "ag-ui", "respflow"):
        body = (await gateway.frames(form))[1]
        assert str(gateway.files).encode() not in body
        if form != "respflow":
            assert b"base64" not in body
    for bad in ("ag_ui", "json", ""):
        answer = await gateway.http.get(f"{gateway.url}&format={bad}")
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "bad_format"
    for bad_id in ("nope", "1-0:x", "1-0:-1", "1-0:"):
        answer = await gateway.http.get(
            f"{gateway.url}&format=ag-ui", headers={"last-event-id": bad_id}
        )
        assert answer.status_code == 400, bad_id


@needs_node
@pytest.mark.anyio
async def test_the_apps_protocol_streams_whole_and_resumed_are_what_their_clients_accept(
    gateway: Gateway,
) -> None:
    vercel = sse_frames((await gateway.frames("vercel"))[1])
    agui = sse_frames((await gateway.frames("ag-ui"))[1])
    agui_events = _data(agui)
    resumes = []
    for frames, form in ((vercel, "vercel"), (agui, "ag-ui")):
        ids = [frame_id for frame_id, _ in frames if frame_id is not None]
        # Every event's cursor would be ~120 requests a protocol; every 5th, and the ids
        # inside an event's frames, keep it quick (every frame id is a property above).
        for n, frame_id in enumerate(ids):
            if n % 5 and ":" not in frame_id:
                continue
            resumed = sse_frames((await gateway.frames(form, **{"last-event-id": frame_id}))[1])
            seen = [i for i, _ in frames].index(frame_id)
            if form == "vercel":  # a reader that kept its state gets exactly the rest
                assert resumed == frames[seen + 1 :]
                continue
            # AG-UI: a prelude without ids, then the events after the cursor (cut inside an
            # event's frames: that whole event again).
            first = seen + 1
            if ":" in frame_id:
                cursor = frame_id.split(":")[0]
                first = min(i for i, (f, _) in enumerate(frames) if f and f.startswith(cursor))
            prelude = resumed[: len(resumed) - len(frames[first:])]
            assert resumed[len(prelude) :] == frames[first:]
            assert [f for f, _ in prelude] == [None] * len(prelude)
            assert [e["type"] for e in _data(prelude)][:2] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
            resumes.append({"at": first, "prelude": _data(prelude), "apply": True})
    report = await node_check(
        {
            "vercel": [{"name": "app", "chunks": _data(vercel)}],
            "agui": [{"name": "app", "events": agui_events, "resumes": resumes}],
        }
    )
    # What useChat's reducer made of the stream: the code, its logs, the answer with
    # served links, and each saved file as a file part whose URL serves its bytes.
    message = report["finals"]["vercel"]["app"]
    parts = message["parts"]
    call = next(p for p in parts if p["type"] == "tool-code_interpreter")
    assert call["state"] == "output-available"
    assert call["providerExecuted"] is True
    assert "rolls.to_csv(" in call["input"]["code"]
    logs = [o["logs"] for o in call["output"]["outputs"] if o.get("type") == "logs"]
    assert "mean      7.00" in logs[0]
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    assert "The ten rolls average 7.0" in text
    assert "sandbox:" not in text
    files = {p["providerMetadata"]["respflow"]["filename"]: p for p in parts if p["type"] == "file"}
    assert files["dice_rolls.csv"]["mediaType"] == "text/csv"
    for part in files.values():
        assert part["url"] in text or part["mediaType"].startswith("image/")
        served = await gateway.http.get(part["url"])
        assert served.status_code == 200
    csv = await gateway.http.get(files["dice_rolls.csv"]["url"])
    assert csv.content == (FILES / "dice_rolls.csv").read_bytes()
    assert message["metadata"]["usage"]["totalTokens"] > 0
    # And what an AG-UI agent made of it: the call, its logs, the answer, the files.
    messages = report["finals"]["agui"]["app"]
    results = [m for m in messages if m["role"] == "tool"]
    assert any(part.get("text", "").startswith("count") for r in results for part in r["content"])
    urls = [part["source"]["value"] for r in results for part in r["content"] if "source" in part]
    assert {u.split("?")[0].rsplit("/", 1)[-1] for u in urls} >= {
        "dice_rolls.csv",
        "dice_chart.png",
    }


@needs_node
@pytest.mark.anyio
async def test_an_ag_ui_http_agent_follows_a_response_of_the_app_end_to_end(
    gateway: Gateway,
) -> None:
    """@ag-ui/client's HttpAgent, over HTTP, through its own parsing, verification and
    reducer: the reasoning, the code call, its logs and files, the answer; and resumed
    from the middle of the code with its last event id, the same messages."""
    url = str(gateway.http.base_url).rstrip("/") + gateway.url + "&format=ag-ui"

    async def run(*last_event_id: str) -> Json:
        assert NODE is not None
        done = await anyio.run_process(
            [NODE, str(NODE_DIR / "agent.mjs"), url, *last_event_id], cwd=NODE_DIR, check=False
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        seen: Json = json.loads(done.stdout)
        assert seen["warnings"] == []
        return seen

    whole = await run()
    assert whole["events"][0] == "RUN_STARTED"
    assert whole["events"][-1] == "RUN_FINISHED"
    messages = whole["messages"]
    roles = [m["role"] for m in messages]
    assert roles[0] == "reasoning"
    call = next(m for m in messages if m.get("toolCalls"))["toolCalls"][0]
    assert call["function"]["name"] == "code_interpreter"
    assert "rolls.to_csv(" in json.loads(call["function"]["arguments"])["code"]
    results = [m for m in messages if m["role"] == "tool" and m["toolCallId"] == call["id"]]
    texts = [part["text"] for m in results for part in m["content"] if part["type"] == "text"]
    assert any("mean      7.00" in text for text in texts)
    for part in (p for m in results for p in m["content"] if p["type"] != "text"):
        assert part["source"]["type"] == "url"  # served, never inline
        served = await gateway.http.get(part["source"]["value"])
        assert served.status_code == 200
    answer = messages[-1]
    assert answer["role"] == "assistant"
    assert "The ten rolls average 7.0" in answer["content"]
    assert "sandbox:" not in answer["content"]

    frames = sse_frames((await gateway.frames("ag-ui"))[1])
    events = _data(frames)
    mid_code = next(
        frame_id
        for (frame_id, _), event in zip(frames, events, strict=True)
        if event["type"] == "TOOL_CALL_ARGS" and frame_id and ":" not in frame_id
    )
    resumed = await run(mid_code)
    assert resumed["events"][:2] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
    assert resumed["messages"] == whole["messages"]


# -- useChat in a real browser --------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    os.environ.get("RESPFLOW_BROWSER_TEST") != "required"
    and (not Path(CHROMIUM).exists() or importlib.util.find_spec("playwright") is None),
    reason="chromium and playwright are needed (apt-get install chromium; pip install -e "
    "'.[browser]'); RESPFLOW_BROWSER_TEST=required makes this a failure",
)
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>useChat on respflow</title></head>
<body><div id="root"></div><script src="/chat.js"></script></body></html>"""


def _use_chat(url: str) -> Json:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.click("#run")
            page.wait_for_function("document.getElementById('finished').textContent === '1'")
            link = page.locator(".file a", has_text="dice_rolls.csv")
            with page.expect_download() as caught:
                link.click()
            seen: Json = {
                "code": page.locator("pre.code").inner_text(),
                "logs": page.locator("pre.logs").inner_text(),
                "answer": page.locator(".answer").all_inner_texts(),
                "links": page.locator(".file a").evaluate_all("els => els.map(e => e.href)"),
                "images": page.locator(".file img").evaluate_all(
                    "els => els.map(e => e.complete && e.naturalWidth)"
                ),
                "download": Path(caught.value.path()).read_bytes(),
                "error": page.locator("#error").inner_text(),
            }
            # useChat's resumeStream: the response replayed from its start replaces the
            # message it had; the page does not grow a second answer.
            page.click("#resume")
            page.wait_for_function("document.getElementById('finished').textContent === '2'")
            seen["messages after resume"] = page.locator("section.message").count()
            seen["answer after resume"] = page.locator(".answer").all_inner_texts()
            seen["errors"] = errors
            return seen
        finally:
            browser.close()


@needs_node
@needs_browser
@pytest.mark.anyio
async def test_a_use_chat_page_shows_the_code_its_logs_the_answer_and_working_file_links(
    anyio_backend: str, tmp_path: Path
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("the page does not depend on the server's backend (its routes run on both)")
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    bundle = tmp_path / "chat.js"
    esbuild = NODE_DIR / "node_modules" / ".bin" / "esbuild"
    await anyio.run_process(
        [
            str(esbuild),
            str(NODE_DIR / "chat-page.jsx"),
            "--bundle",
            "--format=iife",
            "--jsx=automatic",
            '--define:process.env.NODE_ENV="production"',
            f"--outfile={bundle}",
            "--log-level=warning",
        ],
        cwd=NODE_DIR,
    )
    script = bundle.read_bytes()
    broker = MemoryBroker()
    async with (
        MockServer(Recording.from_bytes(SAMPLE_SSE), files=FILES, pace=0.002) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        Runner(client, broker) as runner,
    ):
        gateway = respflow.app(
            broker,
            runner=runner,
            files=tmp_path / "files",
            secret=SECRET,
            authorize=lambda request: True,  # a test page on loopback: anyone may start
            prepare=lambda request, body: {**BODY, "input": str(body.get("input", ""))},
            prefix="/respflow",
        )
        site = Starlette(
            routes=[
                Route("/", lambda request: Response(PAGE, media_type="text/html")),
                Route("/chat.js", lambda request: Response(script, media_type="text/javascript")),
                Mount("/respflow", gateway),
            ]
        )
        async with LoopbackServer(site) as server:
            seen = await anyio.to_thread.run_sync(_use_chat, server.url)
    assert seen["errors"] == []
    assert seen["error"] == ""
    assert "rolls.to_csv(" in seen["code"]  # the code, as it was written
    assert "mean      7.00" in seen["logs"]  # what it printed
    answer = "".join(seen["answer"])
    assert "The ten rolls average 7.0" in answer
    assert "sandbox:" not in answer
    # Each saved file is a link to its served URL (the chart, the CSV and the image the
    # code showed), and each image loads from it.
    names = {link.split("?")[0].rsplit("/", 1)[-1] for link in seen["links"]}
    assert {"dice_rolls.csv", "dice_chart.png"} <= names
    assert all("/respflow/files/" in link for link in seen["links"])
    assert seen["images"]
    assert all(seen["images"])
    assert seen["download"] == (FILES / "dice_rolls.csv").read_bytes()  # the right bytes
    assert seen["messages after resume"] == 1
    assert seen["answer after resume"] == seen["answer"]


@pytest.mark.anyio
async def test_a_reader_resuming_while_the_response_runs_follows_it_to_its_end(
    anyio_backend: str, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    async with (
        MockServer(Recording.from_bytes(SAMPLE_SSE), files=FILES, pace=0.01) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        Runner(client, broker) as runner,
    ):
        app = respflow.app(broker, runner=runner, files=tmp_path, secret=SECRET, token=TOKEN)
        auth = {"authorization": f"Bearer {TOKEN}"}
        async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
            started = (await http.post("/responses", json=BODY, headers=auth)).json()
            rid, url = started["response_id"], started["events_url"]
            cursor = None
            with anyio.fail_after(20):  # wait until the code streams (wire event 30 on)
                while cursor is None or parse_cursor(cursor)[0] < 30:
                    await anyio.sleep(0.01)
                    status = await broker.status(rid)
                    cursor = status.last_cursor if status else None
            assert status is not None
            assert not status.ended
            live, whole = {}, {}
            for form in ("ag-ui", "vercel"):
                resumed = await http.get(f"{url}&format={form}", headers={"last-event-id": cursor})
                live[form] = sse_frames(resumed.content)  # followed to the response's end
                whole[form] = sse_frames((await http.get(f"{url}&format={form}")).content)
    for form, frames in whole.items():
        rest = frames[[frame_id for frame_id, _ in frames].index(cursor) + 1 :]
        prelude = live[form][: len(live[form]) - len(rest)]
        assert live[form][len(prelude) :] == rest
        if form == "vercel":
            assert prelude == []
        else:
            assert [e["type"] for e in _data(prelude)][:2] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
            assert agui_problems(_data(live[form])) == []
