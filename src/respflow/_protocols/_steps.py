"""What the UI protocols share: one response's respflow events, read as a chat UI sees them.

AG-UI and the Vercel UI message stream both describe a run as text that opens, grows and
closes, tool calls whose input streams and whose result arrives once, reasoning, files,
and one end. :class:`Translator` turns one response's events into those steps, so each
protocol only spells them. The respflow-side rules live here, once for both:

- A part that closes with more text than streamed (or that never streamed: a
  non-streaming response, a cut stream) gets the rest as one more delta before it closes.
- A code call's code streams as the JSON of its input, ``{"containerId": ..., "code":
  ...}`` (the shape ``@ai-sdk/openai`` gives ``code_interpreter`` calls), so both
  protocols' clients can parse it while it grows; its result is its outputs, once.
- Whatever is still open when the response ends is closed first, so the end is valid in
  both protocols. A fatal ``stream.error`` is held until then: it becomes the end's error.
- Every id is unique within an encoder, even when the API repeats or omits item ids.
- Data URLs of code images are left out of results when ``inline_images`` is off (a
  server that saves files sends each image as a served file instead, never as base64).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import _events as ev

Json = dict[str, Any]

__all__ = ["Ids", "Translator", "dump_json", "event_json", "usage_counts"]


# -- steps ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStarted:
    model: str | None
    background: bool


@dataclass(frozen=True, slots=True)
class TextStarted:
    message_id: str
    part_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    message_id: str
    part_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TextEnded:
    message_id: str
    part_id: str


@dataclass(frozen=True, slots=True)
class SpanStarted:
    span_id: str


@dataclass(frozen=True, slots=True)
class ReasoningStarted:
    part_id: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    part_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ReasoningEnded:
    part_id: str


@dataclass(frozen=True, slots=True)
class SpanEnded:
    span_id: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    call_id: str
    tool: str


@dataclass(frozen=True, slots=True)
class ToolArgs:
    call_id: str
    delta: str
    """A piece of the input's JSON text; the pieces of one call add up to valid JSON."""


@dataclass(frozen=True, slots=True)
class ToolInput:
    call_id: str
    tool: str
    input: Json


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    tool: str
    status: str
    outputs: list[Json] | None


@dataclass(frozen=True, slots=True)
class Cited:
    event: ev.FileCited


@dataclass(frozen=True, slots=True)
class LinkCited:
    annotation: Json
    """A ``url_citation`` of the finished message (web search)."""


@dataclass(frozen=True, slots=True)
class FileServed:
    event: ev.FileSaved
    url: str
    call_id: str | None
    """The code call that made it (``produced_by``), else the latest in its container."""


@dataclass(frozen=True, slots=True)
class Extra:
    """A respflow event the protocol has no form for (AG-UI ``CUSTOM``, Vercel ``data-*``)."""

    event: ev.Event
    transient: bool
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    event: ev.Event
    """The end event: response.completed / incomplete / failed or stream.truncated."""
    model: str | None
    error: tuple[str, str] | None
    """``(code, message)`` of why it failed: the API's error, or a fatal stream.error."""


Step = (
    RunStarted
    | TextStarted
    | TextDelta
    | TextEnded
    | SpanStarted
    | ReasoningStarted
    | ReasoningDelta
    | ReasoningEnded
    | SpanEnded
    | ToolStarted
    | ToolArgs
    | ToolInput
    | ToolResult
    | Cited
    | LinkCited
    | FileServed
    | Extra
    | Ended
)

# Progress a UI shows while it happens and need not keep.
_TRANSIENT = (ev.CodeOutput, ev.CodeInterpreting, ev.StreamGap, ev.StreamDropped)


# -- helpers ----------------------------------------------------------------------------


class Ids:
    """Hands out ids unique within one encoder: the API's item id when it is free."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._tried: dict[str, int] = {}
        """The last suffix tried for each wanted id: many items of one id cost each one try."""

    def claim(self, wanted: str) -> str:
        given, n = wanted, self._tried.get(wanted, 1)
        while given in self._taken:
            n += 1
            given = f"{wanted}~{n}"
        self._tried[wanted] = n
        self._taken.add(given)
        return given


_encoder = msgspec.json.Encoder()


def dump_json(value: Any) -> bytes:
    """Compact JSON; a string msgspec cannot encode (a lone surrogate from a hand-made
    event) is escaped instead of failing the stream."""
    try:
        return _encoder.encode(value)
    except (UnicodeEncodeError, msgspec.EncodeError):
        return json.dumps(value, separators=(",", ":")).encode()


def _json_text(text: str) -> str:
    """``text`` as the inside of a JSON string (what goes between the quotes)."""
    return dump_json(text).decode()[1:-1]


def event_json(event: ev.Event) -> Json:
    """The event as its JSON object (what ``encode_event`` writes)."""
    value: Json = msgspec.json.decode(dump_json(event))
    return value


def usage_counts(usage: Json | None) -> Json:
    """The Responses API's usage as token counts named the way both protocols name them."""
    if not isinstance(usage, dict):
        return {}
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    found = {
        "inputTokens": usage.get("input_tokens"),
        "outputTokens": usage.get("output_tokens"),
        "totalTokens": usage.get("total_tokens"),
        "reasoningTokens": outputs.get("reasoning_tokens"),
        "cachedInputTokens": inputs.get("cached_tokens"),
        "cacheWriteInputTokens": inputs.get("cache_write_tokens"),
    }
    # Both protocols want whole, non-negative counts: anything else is left out.
    return {
        name: count
        for name, count in found.items()
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0
    }


# -- the translator ---------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    message_id: str
    id: str
    pieces: list[str] = field(default_factory=list)
    open: bool = True


@dataclass(slots=True)
class _Call:
    id: str
    tool: str
    container_id: str | None
    pieces: list[str] = field(default_factory=list)
    input_done: bool = False
    result_done: bool = False


class Translator:
    """One response's events as steps; see the module docstring."""

    def __init__(self, response_id: str, ids: Ids, *, inline_images: bool = True) -> None:
        self.response_id = response_id
        self.inline_images = inline_images
        self.started = False
        self.ended = False
        self.model: str | None = None
        self._ids = ids
        self._fatal: tuple[str, str] | None = None
        self._messages: dict[int, str] = {}
        self._texts: dict[tuple[int, int], _Part] = {}
        self._spans: dict[int, str] = {}
        self._open_spans: set[int] = set()
        self._reasoning: dict[tuple[int, str, int], _Part] = {}
        self._calls: dict[int, _Call] = {}
        self._latest_call: dict[str, _Call] = {}
        self._item_calls: dict[str, _Call] = {}

    def feed(self, event: ev.Event, held: Sequence[ev.Event] = ()) -> list[Step]:
        """The steps for ``event``; ``held`` are events that came before the response's
        id was known (``response_id`` empty), shown right after the run starts."""
        if self.ended:
            return []  # the end is last: nothing follows it in either protocol
        steps: list[Step] = []
        if not self.started:
            self.started = True
            background = False
            if isinstance(event, ev.ResponseStarted):
                self.model, background = event.model, event.background
            steps.append(RunStarted(self.model, background))
            for early in held:
                self._step(early, steps)
            if isinstance(event, ev.ResponseStarted):
                return steps
        self._step(event, steps)
        return steps

    # -- by event ------------------------------------------------------------------------

    def _step(self, event: ev.Event, steps: list[Step]) -> None:
        match event:
            case ev.TextDelta(output_index=oi, content_index=ci, delta=delta):
                part = self._text(steps, event.item_id, oi, ci)
                if delta:
                    part.pieces.append(delta)
                    steps.append(TextDelta(part.message_id, part.id, delta))
            case ev.TextDone(output_index=oi, content_index=ci, text=text):
                if not self._closed(self._texts.get((oi, ci))):  # a repeat adds nothing
                    self._close_text(steps, self._text(steps, event.item_id, oi, ci), text)
            case ev.MessageCompleted(output_index=oi, text=text):
                self._complete_message(steps, event.item_id, oi, text, event.annotations)
            case ev.ReasoningDelta(output_index=oi, delta=delta):
                part = self._reasoning_part(steps, event.item_id, oi, event.part, event.index)
                if delta:
                    part.pieces.append(delta)
                    steps.append(ReasoningDelta(part.id, delta))
            case ev.ReasoningDone(output_index=oi, text=text):
                if not self._closed(self._reasoning.get((oi, event.part, event.index))):
                    part = self._reasoning_part(steps, event.item_id, oi, event.part, event.index)
                    self._close_reasoning(steps, part, text)
            case ev.ItemCompleted(item_type="reasoning", output_index=oi):
                if not any(index == oi for index, _, _ in self._reasoning):
                    # Never streamed (a non-streaming response): its texts, from the item.
                    for kind, index, text in _reasoning_texts(event.item):
                        part = self._reasoning_part(steps, event.item_id or "", oi, kind, index)
                        self._close_reasoning(steps, part, text)
                self._close_span(steps, oi)
            case ev.CodeStarted(output_index=oi):
                self._call(steps, event.item_id, oi, event.tool, event.container_id)
            case ev.CodeDelta(output_index=oi, delta=delta):
                call = self._call(steps, event.item_id, oi)
                if delta and not call.input_done:
                    call.pieces.append(delta)
                    steps.append(ToolArgs(call.id, _json_text(delta)))
            case ev.CodeDone(output_index=oi, code=code) if oi in self._calls:
                self._close_input(steps, self._calls[oi], code)
            case ev.CodeDone():
                pass  # never started (a non-streaming response): code.completed says all
            case ev.CodeCompleted(output_index=oi):
                call = self._call(steps, event.item_id, oi, event.tool, event.container_id)
                self._close_input(steps, call, event.code)
                self._result(steps, call, event.status, event.outputs)
            case ev.CodeLogs() | ev.CodeImage():
                pass  # the call's result carries them, from code.completed
            case ev.FileSaved(url=url) if url:
                maker = self._item_calls.get(event.produced_by or "")
                maker = maker or self._latest_call.get(event.container_id or "")
                steps.append(FileServed(event, url, maker.id if maker else None))
            case ev.FileCited():
                steps.append(Cited(event))
            case ev.StreamError(fatal=True) if self._fatal is None:
                self._fatal = (event.code, event.message)
            case ev.ResponseStarted():
                pass  # a repeat: the run has started
            case ev.ResponseCompleted() | ev.ResponseIncomplete() | ev.ResponseFailed():
                self._end(steps, event, _api_error(event.error))
            case ev.StreamTruncated():
                self._end(steps, event, None)
            case _:
                steps.append(self._extra(event))

    @staticmethod
    def _closed(part: _Part | None) -> bool:
        return part is not None and not part.open

    def _extra(self, event: ev.Event) -> Extra:
        call_id = None
        if isinstance(event, ev.CodeOutput | ev.CodeInterpreting | ev.CodeOutputsMissing):
            call = self._calls.get(event.output_index)
            call_id = call.id if call else None
        return Extra(event, isinstance(event, _TRANSIENT), call_id)

    # -- text ----------------------------------------------------------------------------

    def _message_id(self, item_id: str | None, oi: int) -> str:
        found = self._messages.get(oi)
        if found is None:
            found = self._messages[oi] = self._ids.claim(item_id or f"{self.response_id}:{oi}")
        return found

    def _text(self, steps: list[Step], item_id: str, oi: int, ci: int) -> _Part:
        part = self._texts.get((oi, ci))
        if part is None or not part.open:
            first = oi not in self._messages
            message_id = self._message_id(item_id, oi)
            part_id = message_id if first else self._ids.claim(f"{message_id}:{ci}")
            part = self._texts[(oi, ci)] = _Part(message_id, part_id)
            steps.append(TextStarted(message_id, part_id))
        return part

    def _close_text(self, steps: list[Step], part: _Part, text: str | None) -> None:
        rest = _rest(part.pieces, text)
        if rest:
            part.pieces.append(rest)
            steps.append(TextDelta(part.message_id, part.id, rest))
        part.open = False
        steps.append(TextEnded(part.message_id, part.id))

    def _complete_message(
        self, steps: list[Step], item_id: str, oi: int, text: str, annotations: Sequence[Json]
    ) -> None:
        parts = [part for (index, _), part in self._texts.items() if index == oi]
        if not parts and text:  # never streamed: the whole text at once
            self._close_text(steps, self._text(steps, item_id, oi, 0), text)
        for part in parts:
            if part.open:
                self._close_text(steps, part, text if len(parts) == 1 else None)
        for annotation in annotations:
            if (
                isinstance(annotation, dict)
                and annotation.get("type") == "url_citation"
                and isinstance(annotation.get("url"), str)
            ):
                steps.append(LinkCited(annotation))

    # -- reasoning -----------------------------------------------------------------------

    def _reasoning_part(
        self, steps: list[Step], item_id: str, oi: int, kind: str, index: int
    ) -> _Part:
        span = self._spans.get(oi)
        if span is None:
            span = self._spans[oi] = self._ids.claim(item_id or f"{self.response_id}:{oi}")
        if oi not in self._open_spans:
            self._open_spans.add(oi)
            steps.append(SpanStarted(span))
        part = self._reasoning.get((oi, kind, index))
        if part is None or not part.open:
            part_id = self._ids.claim(f"{span}:{kind}:{index}")
            part = self._reasoning[(oi, kind, index)] = _Part(span, part_id)
            steps.append(ReasoningStarted(part_id))
        return part

    def _close_reasoning(self, steps: list[Step], part: _Part, text: str | None) -> None:
        rest = _rest(part.pieces, text)
        if rest:
            part.pieces.append(rest)
            steps.append(ReasoningDelta(part.id, rest))
        part.open = False
        steps.append(ReasoningEnded(part.id))

    def _close_span(self, steps: list[Step], oi: int) -> None:
        for (index, _, _), part in self._reasoning.items():
            if index == oi and part.open:
                self._close_reasoning(steps, part, None)
        if oi in self._open_spans:
            self._open_spans.discard(oi)
            steps.append(SpanEnded(self._spans[oi]))

    # -- code calls ----------------------------------------------------------------------

    def _call(
        self,
        steps: list[Step],
        item_id: str,
        oi: int,
        tool: str = "code_interpreter",
        container_id: str | None = None,
    ) -> _Call:
        call = self._calls.get(oi)
        if call is None:
            call_id = self._ids.claim(item_id or f"{self.response_id}:{oi}")
            call = self._calls[oi] = _Call(call_id, tool, container_id)
            if item_id:
                self._item_calls[item_id] = call
            steps.append(ToolStarted(call_id, tool))
            opening = '{"code":"'
            if container_id:
                opening = '{"containerId":"' + _json_text(container_id) + '","code":"'
            steps.append(ToolArgs(call_id, opening))
        if call.container_id:
            self._latest_call[call.container_id] = call
        return call

    def _close_input(self, steps: list[Step], call: _Call, code: str) -> None:
        if call.input_done:
            return
        rest = _rest(call.pieces, code)
        if rest:
            call.pieces.append(rest)
            steps.append(ToolArgs(call.id, _json_text(rest)))
        steps.append(ToolArgs(call.id, '"}'))
        call.input_done = True
        given: Json = {"containerId": call.container_id} if call.container_id else {}
        # The finished call is the truth; the arguments are what streamed (the same,
        # unless the API's deltas did not add up to its code).
        steps.append(ToolInput(call.id, call.tool, {**given, "code": code}))

    def _result(
        self, steps: list[Step], call: _Call, status: str, outputs: list[Json] | None
    ) -> None:
        if call.result_done:
            return
        call.result_done = True
        if outputs is not None and not self.inline_images:
            outputs = [out for out in outputs if not _inline_image(out)]
        steps.append(ToolResult(call.id, call.tool, status, outputs))

    # -- the end -------------------------------------------------------------------------

    def _end(self, steps: list[Step], event: ev.Event, error: tuple[str, str] | None) -> None:
        for part in self._texts.values():
            if part.open:
                self._close_text(steps, part, None)
        for oi in list(self._open_spans):
            self._close_span(steps, oi)
        for call in self._calls.values():
            self._close_input(steps, call, "".join(call.pieces))
            self._result(steps, call, "incomplete", None)
        self.ended = True
        steps.append(Ended(event, self.model, error or self._fatal))


def _rest(pieces: list[str], whole: str | None) -> str:
    """What ``whole`` has beyond the streamed ``pieces`` (nothing if they disagree)."""
    if not whole:
        return ""
    streamed = "".join(pieces)
    return whole[len(streamed) :] if whole.startswith(streamed) else ""


def _reasoning_texts(item: Json) -> list[tuple[str, int, str]]:
    """A finished reasoning item's summary and reasoning texts: (part, index, text) each."""
    found = []
    for kind, key, wanted in (
        ("summary", "summary", "summary_text"),
        ("text", "content", "reasoning_text"),
    ):
        entries = item.get(key)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and entry.get("type") == wanted:
                text = entry.get("text")
                if isinstance(text, str) and text:
                    found.append((kind, index, text))
    return found


def _inline_image(output: Json) -> bool:
    url = output.get("url") if isinstance(output, dict) else None
    return isinstance(url, str) and url.startswith("data:")


def _api_error(error: Json | None) -> tuple[str, str] | None:
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    message = error.get("message")
    return (
        str(code) if code else "response_failed",
        str(message) if message else "the response failed",
    )
