"""The assembler: the Responses API's wire events in, normalized events out.

Theory of operation
-------------------
The assembler is a sans-I/O state machine in the manner of h11: it never awaits, never
touches a socket or a clock, and every call returns the events it produced. It follows
one response at a time (a recording of several responses simply runs them in turn):

    WAITING ──response.created──▶ OPEN ──terminal──▶ ENDED ──response.created (new id)──▶ OPEN
                                   │
                                   └──close() with no terminal──▶ ENDED (stream.truncated)

Inside OPEN it keeps one record per output item, keyed by ``output_index`` (servers have
been seen rotating item ids between events, never indices). Deltas accumulate in those
records; when the item's ``output_item.done`` arrives, the item the server reports there
is the truth and the completion events are derived from it. An item still open when the
response ends is completed from the terminal response's ``output`` if it is there, else
from what was received, with status ``incomplete``: no consumer waits forever and
nothing received is lost.

Sequence numbers make a resumed stream safe to splice: a number at or below the last one
seen is a duplicate and is dropped; a jump reports one ``stream.gap``.

Nothing that arrives raises. Undecodable frames and events become non-fatal
``stream.error`` events; an API ``error`` event becomes a fatal one, and an end still
follows (``response.failed`` if the server sends it, else ``stream.truncated`` from
:meth:`Assembler.close`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec

from . import _events as ev
from . import _wire as wire
from ._exceptions import UsageError
from ._links import find_uncovered_links
from ._sse import DEFAULT_MAX_FRAME_BYTES, OversizedFrame, SSEDecoder

__all__ = ["Assembler"]

Json = dict[str, Any]

INCLUDE_HINT = (
    "outputs is null: the request did not ask for them. Add "
    'include=["code_interpreter_call.outputs"] to responses.create() to receive logs and images.'
)
BACKGROUND_HINT = (
    "outputs came back empty on a background response, a known API limitation. Retrieve "
    'the response with include=["code_interpreter_call.outputs"] once it has completed, '
    "or run it in the foreground."
)
EMPTY_HINT = "the code ran and produced no output (nothing printed, no figure shown)."

_FILE_ANNOTATIONS = frozenset({"container_file_citation", "file_citation", "file_path"})

# Output item type -> the kind of record that follows it. Everything else is "other" and
# ends as item.completed with the raw item.
_ITEM_KINDS = {
    "code_interpreter_call": "code",
    "message": "message",
    "shell_call": "shell",
    "shell_call_output": "shell_output",
}
_ITEM_TYPES = {kind: item_type for item_type, kind in _ITEM_KINDS.items()}
# Where the hosted shell runs: any environment but the user's own machine is a container
# whose output the server streams back in a shell_call_output item.
_LOCAL_SHELL = frozenset({"local"})

# Argument-style deltas of items respflow passes through raw: which field of the item they
# build, so that a cut-off call is completed with what arrived.
_ARGUMENT_FIELDS: dict[type[Any], str] = {
    wire.FunctionArgumentsDelta: "arguments",
    wire.CustomToolInputDelta: "input",
    wire.McpArgumentsDelta: "arguments",
    wire.FunctionArgumentsDone: "arguments",
    wire.CustomToolInputDone: "input",
    wire.McpArgumentsDone: "arguments",
}


_End = type[ev.ResponseCompleted | ev.ResponseIncomplete | ev.ResponseFailed]
_ENDS: dict[type[Any], _End] = {
    wire.ResponseCompleted: ev.ResponseCompleted,
    wire.ResponseIncomplete: ev.ResponseIncomplete,
    wire.ResponseFailed: ev.ResponseFailed,
}
_TERMINALS = tuple(_ENDS)

# Reasoning wire event -> (event emitted, part, the event's index field, its text field).
_REASONING: dict[type[Any], tuple[type[ev.EventBase], str, str, str]] = {
    wire.ReasoningSummaryDelta: (ev.ReasoningDelta, "summary", "summary_index", "delta"),
    wire.ReasoningTextDelta: (ev.ReasoningDelta, "text", "content_index", "delta"),
    wire.ReasoningSummaryDone: (ev.ReasoningDone, "summary", "summary_index", "text"),
    wire.ReasoningTextDone: (ev.ReasoningDone, "text", "content_index", "text"),
}
_LIFECYCLE = frozenset(
    {*_TERMINALS, wire.ResponseCreated, wire.ResponseQueued, wire.ResponseInProgress}
)
_END_STATUS: dict[type[Any], str] = {
    ev.ResponseCompleted: "completed",
    ev.ResponseIncomplete: "incomplete",
    ev.ResponseFailed: "failed",
}


class _Part:
    __slots__ = ("annotations", "chunks", "text")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.text: str | None = None
        self.annotations: dict[int, Json] = {}


class _Item:
    __slots__ = (
        "added",
        "arguments",
        "cited",
        "code",
        "container_id",
        "index",
        "item_id",
        "kind",
        "linked",
        "parts",
        "status",
        "tool",
    )

    def __init__(self, index: int, kind: str, item_id: str, added: Json) -> None:
        self.index = index
        self.kind = kind
        self.item_id = item_id
        self.added = added
        self.status: str | None = None
        self.container_id: str | None = added.get("container_id")
        self.tool: ev.Tool = "shell" if kind == "shell" else "code_interpreter"
        if kind == "shell":
            environment = added.get("environment")
            if isinstance(environment, dict):
                self.container_id = environment.get("container_id") or None
        self.code: list[str] = []
        self.parts: dict[int, _Part] = {}
        self.arguments: dict[str, list[str]] = {}
        self.cited: set[tuple[int, int]] = set()
        self.linked: set[int] = set()

    def part(self, content_index: int) -> _Part:
        part = self.parts.get(content_index)
        if part is None:
            part = self.parts[content_index] = _Part()
        return part


class Assembler:
    """Rebuilds the items of a Responses API stream and emits normalized events.

    Feed it whatever you have: raw SSE bytes in any chunks (:meth:`feed`), single event
    payloads such as JSONL lines or frames another SSE parser split (:meth:`feed_event`),
    or a finished non-streaming response (:meth:`feed_response`). Call :meth:`close` at
    the end of the input; it ends a response the stream left open.

    Args:
        starting_after: the ``sequence_number`` a resumed stream starts after, so the
            first event is not mistaken for a gap.
        response_id: the response a resumed stream belongs to; such a stream may start
            with deltas, before any event names the response.
        max_frame_bytes: frames larger than this are dropped with a ``stream.error``.
    """

    def __init__(
        self,
        *,
        starting_after: int | None = None,
        response_id: str = "",
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._sse = SSEDecoder(max_frame_bytes=max_frame_bytes)
        self._out: list[ev.Event] = []
        self._closed = False
        self._last_seq: int | None = starting_after
        self._resumed = starting_after is not None
        self._seq = -1 if starting_after is None else starting_after
        self._k = 0
        self.duplicates = 0
        """Events dropped because their sequence number was already seen."""
        self.ignored_after_end = 0
        """Events that arrived after their response had ended, and were dropped."""
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            wire.ResponseCreated: self._on_created,
            wire.ResponseQueued: self._on_lifecycle,
            wire.ResponseInProgress: self._on_lifecycle,
            wire.ResponseCompleted: self._on_terminal,
            wire.ResponseIncomplete: self._on_terminal,
            wire.ResponseFailed: self._on_terminal,
            wire.OutputItemAdded: self._on_item_added,
            wire.OutputItemDone: self._on_item_done,
            wire.CodeInProgress: self._on_code_progress,
            wire.CodeCallCompleted: self._on_code_progress,
            wire.CodeInterpreting: self._on_code_interpreting,
            wire.CodeDelta: self._on_code_delta,
            wire.CodeDeltaDotted: self._on_code_delta,
            wire.CodeDone: self._on_code_done,
            wire.CodeDoneDotted: self._on_code_done,
            wire.ShellCommandAdded: self._on_shell_command,
            wire.ShellCommandDelta: self._on_shell_command,
            wire.ShellCommandDone: self._on_shell_command_done,
            wire.ShellOutputDelta: self._on_shell_output,
            wire.ShellOutputDone: self._on_shell_output_done,
            wire.ContentPartAdded: self._on_part_added,
            wire.ContentPartDone: self._on_part_done,
            wire.TextDelta: self._on_text_delta,
            wire.TextDone: self._on_text_done,
            wire.AnnotationAdded: self._on_annotation,
            wire.RefusalDelta: self._on_refusal_delta,
            wire.RefusalDone: self._on_refusal_done,
            wire.ReasoningSummaryDelta: self._on_reasoning,
            wire.ReasoningTextDelta: self._on_reasoning,
            wire.ReasoningSummaryDone: self._on_reasoning,
            wire.ReasoningTextDone: self._on_reasoning,
            wire.ErrorEvent: self._on_error,
        }
        for cls in _ARGUMENT_FIELDS:
            self._handlers[cls] = self._on_arguments
        self._reset_response()
        if response_id:
            self._rid = response_id
            self._background = True

    # -- public API ---------------------------------------------------------------------

    @property
    def response_id(self) -> str:
        """The id of the response being followed ("" until one is seen)."""
        return self._rid

    @property
    def last_sequence_number(self) -> int | None:
        """The highest sequence number accepted: the cursor to resume after."""
        return self._last_seq

    @property
    def background(self) -> bool:
        """Whether the response runs in background mode, so its stream can be resumed."""
        return self._background

    @property
    def ended(self) -> bool:
        """Whether the current response has had its end event."""
        return self._ended

    @property
    def output(self) -> list[Json]:
        """The current response's finished output items, in ``response.output`` shape."""
        return [self._final[i] for i in sorted(self._final)]

    def feed(self, data: bytes) -> list[ev.Event]:
        """Feed raw event-stream bytes, cut anywhere; returns the events they completed."""
        self._check_open()
        for frame in self._sse.feed(data):
            if isinstance(frame, OversizedFrame):
                self._oversized(frame)
            else:
                self._payload(frame.data, complete=frame.complete)
        return self._take()

    def feed_event(self, payload: bytes | str | Mapping[str, Any]) -> list[ev.Event]:
        """Feed one wire event: a JSON object (bytes or str, e.g. a JSONL line) or a dict."""
        self._check_open()
        if isinstance(payload, Mapping):
            payload = msgspec.json.encode(payload)
        self._payload(payload, complete=True)
        return self._take()

    def feed_response(self, response: bytes | str | Mapping[str, Any]) -> list[ev.Event]:
        """Feed a finished non-streaming ``Response`` (JSON, or a dict such as ``model_dump()``).

        Yields the same item-level events as the stream of that response would.
        """
        self._check_open()
        try:
            if isinstance(response, Mapping):
                resp = msgspec.convert(response, wire.WireResponse)
            else:
                resp = wire.decode_response(response)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            self._error("invalid_response", f"the response object could not be read: {exc}")
            return self._take()
        self._begin(resp.id)
        self._seq, self._k = 0, 0
        self._background = bool(resp.background)
        self._emit_started(resp)
        status = resp.status
        if status == "completed":
            self._finish(ev.ResponseCompleted, resp)
        elif status == "incomplete":
            self._finish(ev.ResponseIncomplete, resp)
        elif status in ("failed", "cancelled"):
            self._finish(ev.ResponseFailed, resp)
        else:
            self._finish(None, resp, f"the response is still {status!r}: it has not finished yet")
        return self._take()

    def transport_error(self, message: str, *, code: str = "transport_error") -> list[ev.Event]:
        """Report that the connection failed: a fatal ``stream.error``; :meth:`close` ends it."""
        self._check_open()
        self._fatal = "the connection failed before the response ended"
        self._error(code, message, fatal=True)
        return self._take()

    def reconnected(self) -> None:
        """The source reconnected to resume the stream: a frame the old connection cut
        off is dropped unread (the resumed stream sends that event again)."""
        self._check_open()
        self._sse = SSEDecoder(max_frame_bytes=self._max_frame_bytes)

    def close(self) -> list[ev.Event]:
        """End of input. Ends the current response with ``stream.truncated`` if it is open."""
        if self._closed:
            return []
        for frame in self._sse.close():
            if isinstance(frame, OversizedFrame):
                self._oversized(frame)
            else:
                self._payload(frame.data, complete=frame.complete)
        self._closed = True
        if not self._ended:
            self._truncate(self._truncation_message())
        return self._take()

    # -- plumbing -----------------------------------------------------------------------

    def _reset_response(self) -> None:
        self._rid = ""
        self._started = False
        self._ended = False
        self._background = False
        self._fatal = ""
        self._items: dict[int, _Item] = {}
        self._by_id: dict[str, _Item] = {}
        self._final: dict[int, Json] = {}
        self._container_id: str | None = None
        self._shell_lines: dict[int, list[str]] = {}
        self._shell_calls: dict[str, _Item] = {}
        self._shell_pending: dict[str, Json] = {}

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this Assembler was closed; create a new Assembler for another stream")

    def _take(self) -> list[ev.Event]:
        out, self._out = self._out, []
        return out

    def _cursor(self) -> str:
        k = self._k
        self._k = k + 1
        return f"{self._seq}-{k}"

    def _emit(self, cls: type[ev.EventBase], /, **fields: Any) -> None:
        event = cls(
            response_id=self._rid, sequence_number=self._seq, cursor=self._cursor(), **fields
        )
        self._out.append(cast(ev.Event, event))

    def _error(self, code: str, message: str, *, fatal: bool = False) -> None:
        self._emit(
            ev.StreamError,
            code=code,
            message=message,
            fatal=fatal,
        )

    def _oversized(self, frame: OversizedFrame) -> None:
        self._error(
            "frame_too_large",
            f"an event of more than {frame.limit} bytes was dropped (max_frame_bytes); "
            "raise max_frame_bytes if such events are expected",
        )

    def _payload(self, data: bytes | str, *, complete: bool) -> None:
        if data == b"[DONE]" or data == "[DONE]":
            return
        try:
            event = wire.decode_event(data)
        except msgspec.ValidationError as exc:  # a DecodeError subclass: catch it first
            self._error(
                "invalid_event",
                f"an event did not have the shape the Responses API documents ({exc}); "
                "it was skipped",
            )
            return
        except UnicodeDecodeError as exc:
            self._error("invalid_utf8", f"an event was not valid UTF-8 and was skipped: {exc}")
            return
        except msgspec.DecodeError as exc:
            if not complete:
                self._error(
                    "cut_off_event",
                    "the stream ended in the middle of an event; the partial event was skipped",
                )
            else:
                self._error("invalid_json", f"an event was not valid JSON and was skipped: {exc}")
            return
        try:
            self._dispatch(event)
        except Exception as exc:  # a bug must not lose what was already rebuilt
            self._error(
                "unprocessable_event",
                f"respflow could not process a {_type_of(event)} event ({exc!r}); it was "
                "skipped. Please report this with the recording.",
            )

    def _dispatch(self, event: wire.WireEvent | wire.Unrecognized) -> None:
        if type(event) in _LIFECYCLE:
            assert isinstance(event, wire._Lifecycle)
            # A new response starts with response.created, or, in a resumed stream, with
            # whatever lifecycle event follows the end. Other id changes inside an open
            # response are ignored: some servers rotate ids on every event.
            rid = event.response.id
            if rid and self._rid and rid != self._rid:
                if type(event) is wire.ResponseCreated:
                    if not self._ended:
                        self._truncate("a new response began before this one ended")
                    self._begin(rid)
                elif self._ended and type(event) not in _TERMINALS:
                    self._begin(rid)
        if self._ended:
            self.ignored_after_end += 1
            return
        seq = event.sequence_number
        if seq is not None:
            last = self._last_seq
            if last is not None and seq <= last:
                self.duplicates += 1
                return
            self._seq, self._k, self._last_seq = seq, 0, seq
            expected = 0 if last is None else last + 1
            if seq != expected:
                self._emit(ev.StreamGap, expected=expected, received=seq)
        self._started = True
        if type(event) is wire.Unrecognized:
            if event.type not in wire.ABSORBED_TYPES:
                self._emit(
                    ev.Unknown,
                    raw=event.raw,
                )
            return
        self._handlers[type(event)](event)

    def _begin(self, rid: str) -> None:
        """A new response starts: forget the previous one (its end was already emitted)."""
        if self._started:
            self._reset_response()
            self._resumed = False
            self._last_seq = None
            self._seq, self._k = -1, 0
        self._rid = rid
        self._started = True

    # -- response lifecycle ------------------------------------------------------------

    def _emit_started(self, resp: wire.WireResponse) -> None:
        self._emit(
            ev.ResponseStarted,
            model=resp.model,
            created_at=resp.created_at,
            background=bool(resp.background),
        )

    def _on_created(self, event: wire.ResponseCreated) -> None:
        self._on_lifecycle(event)
        self._emit_started(event.response)

    def _on_lifecycle(self, event: wire._Lifecycle) -> None:
        resp = event.response
        if resp.id and not self._rid:
            self._rid = resp.id
        if resp.background is not None:
            self._background = resp.background

    def _on_terminal(self, event: wire._Lifecycle) -> None:
        self._on_lifecycle(event)
        self._finish(_ENDS[type(event)], event.response)

    def _finish(
        self,
        end: _End | None,
        resp: wire.WireResponse,
        truncation: str = "",
    ) -> None:
        """Complete every item not yet done, then emit the end."""
        output = [o for o in resp.output or () if isinstance(o, dict)]
        # The terminal output is matched to the items by id, else by position and type:
        # recordings have been trimmed (positions shift) and ids have been seen rotating.
        by_id = {o["id"]: o for o in output if isinstance(o.get("id"), str)}
        matched: list[Json] = []
        for index in sorted(self._items):
            item = self._items[index]
            final = by_id.get(item.item_id)
            if final is None and index < len(output) and _same_kind(output[index], item):
                final = output[index]
            if final is not None:
                matched.append(final)
            if index not in self._final:
                self._complete(item, final if final is not None else self._rebuild(item))
        # Items the stream never showed (a non-streaming response has only these).
        for position, final in enumerate(output):
            if any(final is m for m in matched):
                continue
            index = position if position not in self._items else max(self._items) + 1
            self._complete(self._new_item(index, final), final)
        self._flush_shell_calls()
        if end is None:
            self._truncate(truncation)
            return
        self._emit(
            end,
            status=resp.status or _END_STATUS[end],
            usage=resp.usage,
            error=resp.error,
            incomplete_details=resp.incomplete_details,
        )
        self._ended = True

    def _truncate(self, message: str) -> None:
        for index in sorted(self._items):
            if index not in self._final:
                item = self._items[index]
                self._complete(item, self._rebuild(item))
        self._flush_shell_calls()
        self._emit(
            ev.StreamTruncated,
            last_sequence_number=self._last_seq,
            message=message,
        )
        self._ended = True

    def _truncation_message(self) -> str:
        last = self._last_seq
        if not self._started:
            return "the stream ended before any event arrived"
        if self._fatal:
            why = self._fatal
        else:
            why = (
                "the stream ended without response.completed, response.incomplete or "
                "response.failed"
            )
        if self._background and self._rid and last is not None:
            return (
                f"{why}; this background response can be resumed with "
                f"GET /v1/responses/{self._rid}?stream=true&starting_after={last}"
            )
        return f"{why}; only background responses can be resumed, so retry the request"

    def _on_error(self, event: wire.ErrorEvent) -> None:
        nested = event.error or {}
        code = nested.get("code") or nested.get("type") or event.code or "error"
        message = nested.get("message") or event.message or "the API reported an error"
        self._fatal = "the stream ended after an API error, without response.failed"
        self._error(str(code), str(message), fatal=True)

    # -- items --------------------------------------------------------------------------

    def _new_item(self, index: int, added: Json) -> _Item:
        kind = _ITEM_KINDS.get(added.get("type", ""), "other")
        item = _Item(index, kind, str(added.get("id") or ""), added)
        self._items[index] = item
        if item.item_id:
            self._by_id[item.item_id] = item
        if item.container_id:
            self._container_id = item.container_id
        return item

    def _item(self, event: wire._ItemEvent, kind: str) -> _Item | None:
        """The open record an item event belongs to, made up if the stream never added it."""
        index = event.output_index
        item = self._items.get(index) if index is not None else None
        if item is None and event.item_id:
            item = self._by_id.get(event.item_id)
        if item is None:
            if index is None:
                index = max(self._items, default=-1) + 1
            if not self._resumed:  # in a resumed stream, the item was added before the cursor
                self._error(
                    "unexpected_event",
                    f"{_type_of(event)} arrived for an item that was never added "
                    f"(output_index={index}); the item was rebuilt from the events that "
                    "followed",
                )
            added_type = _ITEM_TYPES.get(kind, kind)
            item = self._new_item(index, {"id": event.item_id or "", "type": added_type})
            if kind in ("code", "shell"):
                self._emit_code_started(item)
        if item.index in self._final:
            return None  # late events for a finished item change nothing
        return item

    def _on_item_added(self, event: wire.OutputItemAdded) -> None:
        index = event.output_index
        if index is None:
            index = max(self._items, default=-1) + 1
        item = self._new_item(index, event.item)
        if item.kind in ("code", "shell"):
            self._emit_code_started(item)

    def _emit_code_started(self, item: _Item) -> None:
        self._emit(
            ev.CodeStarted,
            item_id=item.item_id,
            output_index=item.index,
            container_id=item.container_id,
            tool=item.tool,
        )

    def _on_item_done(self, event: wire.OutputItemDone) -> None:
        final = event.item
        index = event.output_index
        if index is None:
            found = self._by_id.get(str(final.get("id") or ""))
            index = found.index if found else max(self._items, default=-1) + 1
        if index in self._final:
            return
        item = self._items.get(index)
        if item is None:
            item = self._new_item(index, final)
        self._complete(item, final)

    def _complete(self, item: _Item, final: Json) -> None:
        self._final[item.index] = final
        if item.kind == "code":
            self._complete_code(item, final)
        elif item.kind == "message":
            self._complete_message(item, final)
        elif item.kind == "shell":
            self._complete_shell_call(item, final)
        else:
            if item.kind == "shell_output":
                self._complete_shell_output(item, final)
            self._emit(
                ev.ItemCompleted,
                item_id=final.get("id") or item.item_id or None,
                output_index=item.index,
                item_type=str(final.get("type") or "unknown"),
                status=final.get("status"),
                item=final,
            )

    def _rebuild(self, item: _Item) -> Json:
        """The item as far as it arrived, for one the response ended without finishing."""
        rebuilt = dict(item.added)
        rebuilt["status"] = "incomplete"
        if item.kind == "code":
            rebuilt["code"] = "".join(item.code)
            rebuilt["outputs"] = None
        elif item.kind == "shell":
            action = dict(rebuilt.get("action") or {})
            action["commands"] = "".join(item.code).split("\n") if item.code else []
            rebuilt["action"] = action
        elif item.kind == "message":
            rebuilt["content"] = [
                {
                    "type": "output_text",
                    "text": part.text if part.text is not None else "".join(part.chunks),
                    "annotations": [part.annotations[i] for i in sorted(part.annotations)],
                }
                for _, part in sorted(item.parts.items())
            ]
        for field, chunks in item.arguments.items():
            rebuilt[field] = "".join(chunks)
        return rebuilt

    # -- code interpreter ---------------------------------------------------------------

    def _on_code_progress(self, event: wire._ItemEvent) -> None:
        self._item(event, "code")

    def _on_code_interpreting(self, event: wire.CodeInterpreting) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        item.status = "interpreting"
        self._emit(
            ev.CodeInterpreting,
            item_id=item.item_id,
            output_index=item.index,
        )

    def _on_code_delta(self, event: wire.CodeDelta) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        item.code.append(event.delta)
        self._out.append(
            ev.CodeDelta(
                response_id=self._rid,
                sequence_number=self._seq,
                cursor=self._cursor(),
                item_id=item.item_id,
                output_index=item.index,
                delta=event.delta,
            )
        )

    def _on_code_done(self, event: wire.CodeDone) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        code = event.code if event.code is not None else "".join(item.code)
        item.code = [code]
        self._emit(
            ev.CodeDone,
            item_id=item.item_id,
            output_index=item.index,
            code=code,
        )

    def _complete_code(self, item: _Item, final: Json) -> None:
        status = str(final.get("status") or "completed")
        code = final.get("code")
        if not isinstance(code, str):
            code = "".join(item.code)
        outputs = final.get("outputs")
        if outputs is None and isinstance(final.get("results"), list):
            # Payloads from before mid-2025 carried logs in "results".
            outputs = [r for r in final["results"] if isinstance(r, dict) and "logs" in r]
        container_id = final.get("container_id") or item.container_id
        if container_id:
            self._container_id = container_id
        for output in outputs if isinstance(outputs, list) else ():
            kind = output.get("type") if isinstance(output, dict) else None
            if kind == "logs":
                self._emit(
                    ev.CodeLogs,
                    item_id=item.item_id,
                    output_index=item.index,
                    logs=str(output.get("logs") or ""),
                )
            elif kind == "image":
                self._emit(
                    ev.CodeImage,
                    item_id=item.item_id,
                    output_index=item.index,
                    url=str(output.get("url") or ""),
                )
        if status == "completed" and not outputs:
            reason: ev.MissingReason
            if outputs is None:
                reason, hint = "include_not_requested", INCLUDE_HINT
            elif self._background:
                reason, hint = "background_mode", BACKGROUND_HINT
            else:
                reason, hint = "empty", EMPTY_HINT
            self._emit(
                ev.CodeOutputsMissing,
                item_id=item.item_id,
                output_index=item.index,
                reason=reason,
                hint=hint,
            )
        self._emit(
            ev.CodeCompleted,
            item_id=item.item_id,
            output_index=item.index,
            status=status,
            code=code,
            outputs=outputs if isinstance(outputs, list) else None,
            container_id=container_id,
        )

    # -- the hosted shell -------------------------------------------------------------
    # A shell_call item streams its commands (code.delta, one line per command); a separate
    # shell_call_output item streams what they print (code.output), keyed to the call by
    # call_id. The call's code.completed waits for that output, so it carries the outputs
    # as a code interpreter call's does.

    def _on_shell_command(self, event: wire.ShellCommandAdded | wire.ShellCommandDelta) -> None:
        item = self._item(event, "shell")
        if item is None or item.kind != "shell":
            return
        index = event.command_index
        text = event.command if isinstance(event, wire.ShellCommandAdded) else event.delta
        lines = self._shell_lines.setdefault(item.index, [])
        if index >= len(lines):
            if lines:
                self._shell_delta(item, "\n")
            lines.extend([""] * (index + 1 - len(lines)))
        if text:
            lines[index] += text
            self._shell_delta(item, text)

    def _shell_delta(self, item: _Item, delta: str) -> None:
        item.code.append(delta)
        self._emit(ev.CodeDelta, item_id=item.item_id, output_index=item.index, delta=delta)

    def _on_shell_command_done(self, event: wire.ShellCommandDone) -> None:
        self._item(event, "shell")

    def _shell_call_for(self, event: wire._ItemEvent) -> _Item | None:
        """The shell_call a shell_call_output event belongs to (None: not known)."""
        output = self._item(event, "shell_output")
        if output is None:
            return None
        call = self._shell_calls.get(str(output.added.get("call_id") or ""))
        return call or output

    def _on_shell_output(self, event: wire.ShellOutputDelta) -> None:
        item = self._shell_call_for(event)
        if item is None or not isinstance(event.delta, dict):
            return
        for stream in ("stdout", "stderr"):
            text = event.delta.get(stream)
            if isinstance(text, str) and text:
                self._emit(
                    ev.CodeOutput,
                    item_id=item.item_id,
                    output_index=item.index,
                    delta=text,
                    stream=stream,
                    command_index=event.command_index,
                )

    def _on_shell_output_done(self, event: wire.ShellOutputDone) -> None:
        item = self._shell_call_for(event)
        if item is None or not isinstance(event.output, list):
            return
        logs = "".join(
            str(o.get("stdout") or "") + str(o.get("stderr") or "")
            for o in event.output
            if isinstance(o, dict)
        )
        self._emit(ev.CodeLogs, item_id=item.item_id, output_index=item.index, logs=logs)

    def _complete_shell_call(self, item: _Item, final: Json) -> None:
        action = final.get("action")
        commands = action.get("commands") if isinstance(action, dict) else None
        if isinstance(commands, list) and all(isinstance(c, str) for c in commands):
            code = "\n".join(commands)
        else:
            code = "".join(item.code)
        item.code = [code]
        if item.container_id:
            self._container_id = item.container_id
        self._emit(ev.CodeDone, item_id=item.item_id, output_index=item.index, code=code)
        environment = final.get("environment") or item.added.get("environment")
        kind = environment.get("type") if isinstance(environment, dict) else None
        call_id = str(final.get("call_id") or item.added.get("call_id") or "")
        if kind in _LOCAL_SHELL or not call_id:
            self._shell_completed(item, final, None)
        else:
            self._shell_calls[call_id] = item
            self._shell_pending[call_id] = final

    def _complete_shell_output(self, output: _Item, final: Json) -> None:
        call_id = str(final.get("call_id") or output.added.get("call_id") or "")
        call = self._shell_calls.get(call_id)
        pending = self._shell_pending.pop(call_id, None)
        if call is not None and pending is not None:
            outputs = final.get("output")
            self._shell_completed(call, pending, outputs if isinstance(outputs, list) else None)

    def _shell_completed(self, item: _Item, final: Json, outputs: list[Json] | None) -> None:
        self._emit(
            ev.CodeCompleted,
            item_id=item.item_id,
            output_index=item.index,
            status=str(final.get("status") or "completed"),
            code="".join(item.code),
            outputs=outputs,
            container_id=item.container_id,
            tool="shell",
        )

    def _flush_shell_calls(self) -> None:
        """The response ends: shell calls still waiting for their output complete without."""
        for call_id, final in list(self._shell_pending.items()):
            del self._shell_pending[call_id]
            item = self._shell_calls.get(call_id)
            if item is not None:
                self._shell_completed(item, final, None)

    # -- messages -----------------------------------------------------------------------

    def _on_part_added(self, event: wire.ContentPartAdded) -> None:
        item = self._item(event, "message")
        if item is not None and item.kind == "message":
            item.part(event.content_index)

    def _on_text_delta(self, event: wire.TextDelta) -> None:
        item = self._item(event, "message")
        if item is None:
            return
        item.part(event.content_index).chunks.append(event.delta)
        self._out.append(
            ev.TextDelta(
                response_id=self._rid,
                sequence_number=self._seq,
                cursor=self._cursor(),
                item_id=item.item_id,
                output_index=item.index,
                content_index=event.content_index,
                delta=event.delta,
            )
        )

    def _on_text_done(self, event: wire.TextDone) -> None:
        item = self._item(event, "message")
        if item is None:
            return
        part = item.part(event.content_index)
        text = event.text if event.text is not None else "".join(part.chunks)
        part.text = text
        self._emit(
            ev.TextDone,
            item_id=item.item_id,
            output_index=item.index,
            content_index=event.content_index,
            text=text,
        )

    def _on_annotation(self, event: wire.AnnotationAdded) -> None:
        item = self._item(event, "message")
        if item is None or event.annotation is None:
            return
        part = item.part(event.content_index)
        index = event.annotation_index
        if index is None:
            index = len(part.annotations)
        part.annotations[index] = event.annotation
        self._cite(item, event.content_index, index, event.annotation)

    def _on_part_done(self, event: wire.ContentPartDone) -> None:
        # Annotations arrive after the last text delta, so the part's end is the first
        # moment a link can be judged as having no annotation.
        item = self._item(event, "message")
        if item is None or item.kind != "message" or event.part.get("type") != "output_text":
            return
        part = item.part(event.content_index)
        text = event.part.get("text")
        if isinstance(text, str):
            part.text = text
        annotations = event.part.get("annotations")
        if isinstance(annotations, list):
            for index, annotation in enumerate(annotations):
                part.annotations.setdefault(index, annotation)
                self._cite(item, event.content_index, index, annotation)
        self._link(item, event.content_index, part)

    def _on_refusal_delta(self, event: wire.RefusalDelta) -> None:
        item = self._item(event, "message")
        if item is not None:
            item.part(event.content_index).chunks.append(event.delta)

    def _on_refusal_done(self, event: wire.RefusalDone) -> None:
        item = self._item(event, "message")
        if item is not None and event.refusal is not None:
            item.part(event.content_index).text = event.refusal

    def _cite(self, item: _Item, content_index: int, index: int, annotation: Any) -> None:
        key = (content_index, index)
        if key in item.cited:
            return
        item.cited.add(key)
        if not isinstance(annotation, dict) or annotation.get("type") not in _FILE_ANNOTATIONS:
            return
        file_id = annotation.get("file_id")
        if not isinstance(file_id, str):
            return
        start = annotation.get("start_index", annotation.get("index"))
        end = annotation.get("end_index", start)
        self._emit(
            ev.FileCited,
            item_id=item.item_id,
            output_index=item.index,
            content_index=content_index,
            kind=annotation["type"],
            file_id=file_id,
            filename=annotation.get("filename"),
            start_index=start if isinstance(start, int) else 0,
            end_index=end if isinstance(end, int) else 0,
            container_id=annotation.get("container_id"),
        )

    def _link(self, item: _Item, content_index: int, part: _Part) -> None:
        if content_index in item.linked:
            return
        item.linked.add(content_index)
        text = part.text if part.text is not None else "".join(part.chunks)
        for link in find_uncovered_links(text, part.annotations.values()):
            self._emit(
                ev.FileLink,
                item_id=item.item_id,
                output_index=item.index,
                content_index=content_index,
                path=link.path,
                start_index=link.start,
                end_index=link.end,
                container_id=self._container_id,
            )

    def _complete_message(self, item: _Item, final: Json) -> None:
        content = final.get("content")
        texts: list[str] = []
        annotations: list[Json] = []
        offset = 0
        for content_index, raw in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(raw, dict) or raw.get("type") != "output_text":
                continue
            part = item.part(content_index)
            text = raw.get("text")
            part.text = text if isinstance(text, str) else "".join(part.chunks)
            anns = raw.get("annotations")
            for index, annotation in enumerate(anns if isinstance(anns, list) else ()):
                part.annotations.setdefault(index, annotation)
                self._cite(item, content_index, index, annotation)
                annotations.append(_shifted(annotation, offset))
            self._link(item, content_index, part)
            texts.append(part.text)
            offset += len(part.text)
        phase = final.get("phase")
        self._emit(
            ev.MessageCompleted,
            item_id=item.item_id or str(final.get("id") or ""),
            output_index=item.index,
            status=str(final.get("status") or "completed"),
            text="".join(texts),
            annotations=annotations,
            phase=phase if isinstance(phase, str) else None,
        )

    # -- reasoning and pass-through items ----------------------------------------------------

    def _on_reasoning(self, event: Any) -> None:
        item = self._item(event, "reasoning")
        if item is None:
            return
        cls, part, index_field, value_field = _REASONING[type(event)]
        self._emit(
            cls,
            item_id=item.item_id,
            output_index=item.index,
            index=getattr(event, index_field),
            part=part,
            **{value_field: getattr(event, value_field)},
        )

    def _on_arguments(self, event: Any) -> None:
        item = self._item(event, "other")
        if item is None:
            return
        field = _ARGUMENT_FIELDS[type(event)]
        if isinstance(event, wire._ArgumentsDelta):
            item.arguments.setdefault(field, []).append(event.delta)
        else:
            value = getattr(event, field)
            if isinstance(value, str):
                item.arguments[field] = [value]


def _shifted(annotation: Any, offset: int) -> Json:
    if not isinstance(annotation, dict):
        return {"value": annotation}
    if not offset:
        return annotation
    shifted = dict(annotation)
    for key in ("start_index", "end_index", "index"):
        if isinstance(shifted.get(key), int):
            shifted[key] += offset
    return shifted


def _type_of(event: object) -> str:
    config = getattr(type(event), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else getattr(event, "type", type(event).__name__)


def _same_kind(final: Json, item: _Item) -> bool:
    return _ITEM_KINDS.get(final.get("type", ""), "other") == item.kind
