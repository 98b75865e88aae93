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

The item families live in their own modules: :mod:`._code_items` (Code Interpreter and
the hosted shell) and :mod:`._message_items` (text, citations, links), both built on
:mod:`._items`; this module holds the lifecycle and the dispatch.

Sequence numbers make a resumed stream safe to splice: a number at or below the last one
seen is a duplicate and is dropped; a jump reports one ``stream.gap``. Real streams number
their events densely from 0, so a negative number, or one more than ``max_sequence_jump``
past the last, is corrupt: the event is processed under the last number (its events keep
the cursor order) and a ``stream.error`` says so, but the number is not adopted, so it can
neither make the rest of the stream look like duplicates nor become the resume cursor.
Only the next event confirming it (numbered after it, within ``max_sequence_jump``) shows
that the numbering really moved on; then the stream follows it, with a ``stream.gap``.

Nothing that arrives raises. Undecodable frames and events become non-fatal
``stream.error`` events; an API ``error`` event becomes a fatal one, and an end still
follows (``response.failed`` if the server sends it, else ``stream.truncated`` from
:meth:`Assembler.close`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .. import _events as ev
from .._exceptions import UsageError
from . import held, wire
from .code_items import CodeItems
from .items import JOIN_EVERY, Json, Record, Streamed, kind_of, text_or_none, type_of
from .message_items import MessageItems
from .sse import DEFAULT_MAX_FRAME_BYTES, Data, Frame, OversizedFrame, SSEDecoder

__all__ = ["Assembler"]


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


_JOIN_AHEAD = 8
"""A streamed text is joined ahead of a frame still arriving (:meth:`Assembler._join_before`)
once the frame's bytes so far are at least its length divided by this."""

DEFAULT_MAX_SEQUENCE_JUMP = 1_000_000
"""Far more events than any response has (a long one has tens of thousands)."""

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
_OUT_OF_LINE = object()
"""What :meth:`Assembler._next_in_line` gives when no event can be placed without a look."""

_NOTHING_STREAMED = Streamed()
"""Where :meth:`Assembler._plain` points before a delta told it where deltas go: never
added to."""

_END_STATUS: dict[type[Any], str] = {
    ev.ResponseCompleted: "completed",
    ev.ResponseIncomplete: "incomplete",
    ev.ResponseFailed: "failed",
}


class Assembler(CodeItems, MessageItems):
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
        max_sequence_jump: how far past the last sequence number the next may lie before
            it is taken for corrupt (reported, and not adopted unless the event after it
            confirms it).
    """

    _started: bool
    _ended: bool

    def __init__(
        self,
        *,
        starting_after: int | None = None,
        response_id: str = "",
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_sequence_jump: int = DEFAULT_MAX_SEQUENCE_JUMP,
    ) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._max_jump = max_sequence_jump
        self._outlier: int | None = None
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
        """Events (and unreadable frames) that came after their response ended: dropped."""
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
        self._plain(self._sse.feed_data(data))
        pending = self._sse.pending
        if pending >= held.LONG_TEXT:
            self._join_before(pending)
        return self._take()

    def _join_before(self, pending: int) -> None:
        """A frame of ``pending`` bytes so far is arriving, likely one that carries a
        text streamed in pieces: join those pieces now, while the frame is short, so the
        text is not held three times (pieces, joined, and in the frame) when it is read.

        Only texts at most :data:`_JOIN_AHEAD` times the frame's bytes are joined, so
        joining costs at most that many times the bytes received.
        """
        for index, record in self._items.items():
            if index in self._final:
                continue
            texts = [part.streamed for part in record.parts.values() if part.text is None]
            for streamed in [*texts, record.code]:
                if not streamed.joined() and sum(map(len, streamed)) <= _JOIN_AHEAD * pending:
                    streamed.text()

    def _plain(self, items: list[Data | Frame | OversizedFrame]) -> None:
        """The hot path: frames' data from :meth:`SSEDecoder.feed_data`, decoded, and
        text and code deltas for open items numbered next in line handled right here.

        Everything else goes the general way (:meth:`_frame`, :meth:`_payload`,
        :meth:`_dispatch`), which is what this path does too, only slower: so what is kept
        in locals is written back before, and read again after, each detour. Among what
        is kept is the part the last text delta went to and the item the last code delta
        went to: nearly every delta goes where the one before it went, and only a detour
        can finish an item or add one.
        """
        decode = wire.decode_known
        text_delta, code_delta = wire.TextDelta, wire.CodeDelta
        code_delta_dotted = wire.CodeDeltaDotted
        text_event, code_event = ev.TextDelta, ev.CodeDelta
        join_every = JOIN_EVERY
        out = self._out  # the same list until feed() takes it
        append = out.append
        large = held.LARGE_PAYLOAD
        placed: int | None = None  # the last number placed here, not yet in self._last_seq
        expected, rid = self._next_in_line(), self._rid
        # Where the last text delta went (output and content index; -1: nowhere, as no
        # index is negative), its streamed text, item id and index; the same for code.
        text_output = text_content = code_output = -1
        text_streamed = code_streamed = _NOTHING_STREAMED
        text_item = code_item = ""
        text_index = code_index = 0
        item: Any  # told apart by type(item), which costs less than isinstance(item, (...))
        for item in items:
            item_type = type(item)
            if item_type is bytes or item_type is bytearray:
                if len(item) < large:
                    try:
                        event: Any = decode(item)
                    except Exception:
                        event = None
                else:
                    event, item = self._decoded_large(item)
                kind = type(event)
                if kind is text_delta:
                    seq = event.sequence_number
                    if seq == expected:
                        output, index = event.output_index, event.content_index
                        hit = output == text_output and index == text_content
                        if not hit:
                            found = self._open_part(output, index)
                            if found is not None:
                                hit = True
                                text_output, text_content = output, index
                                text_streamed, text_item, text_index = found
                        if hit:
                            placed = seq
                            expected = seq + 1
                            delta = event.delta
                            append(
                                text_event(
                                    rid, seq, f"{seq}-0", text_item, text_index, index, delta
                                )
                            )
                            recent = text_streamed.recent
                            recent.append(delta)
                            if len(recent) >= join_every:
                                text_streamed.join_recent()
                            continue
                elif kind is code_delta or kind is code_delta_dotted:
                    seq = event.sequence_number
                    if seq == expected:
                        output = event.output_index
                        hit = output == code_output
                        if not hit:
                            record = self._open_record(output)
                            if record is not None:
                                hit = True
                                code_output, code_streamed = output, record.code
                                code_item, code_index = record.item_id, record.index
                        if hit:
                            placed = seq
                            expected = seq + 1
                            delta = event.delta
                            append(code_event(rid, seq, f"{seq}-0", code_item, code_index, delta))
                            recent = code_streamed.recent
                            recent.append(delta)
                            if len(recent) >= join_every:
                                code_streamed.join_recent()
                            continue
            if placed is not None:
                self._placed_in_line(placed)
                placed = None
            if not isinstance(item, (bytes, bytearray)):
                self._frame(item)
            elif event is None or wire.kept_too_deep(event, item):
                self._payload(item, complete=True)  # decoded again, to say what was wrong
            else:
                self._safely(event)
            expected, rid = self._next_in_line(), self._rid
            text_output = text_content = code_output = -1
        if placed is not None:
            self._placed_in_line(placed)

    def _open_record(self, output_index: int | None) -> Record | None:
        """The item at ``output_index`` if it is open (deltas to it are taken in line)."""
        record = self._items.get(output_index)  # type: ignore[arg-type]
        if record is None or record.index in self._final:
            return None
        return record

    def _open_part(self, output_index: int | None, index: int) -> tuple[Streamed, str, int] | None:
        """The streamed text, item id and index of part ``index`` of the open item at
        ``output_index``; None if that item is not open."""
        record = self._open_record(output_index)
        if record is None:
            return None
        return (
            (record.parts.get(index) or record.part(index)).streamed,
            record.item_id,
            record.index,
        )

    def _next_in_line(self) -> int | object:
        """The sequence number that :meth:`_placed` would take without a second look; or
        something no number equals (not None: an event may have no number)."""
        last = self._last_seq
        if self._ended or last is None or last < 0 or self._max_jump < 1:
            return _OUT_OF_LINE
        return last + 1

    def _placed_in_line(self, seq: int) -> None:
        """What :meth:`_placed` leaves after events numbered in line up to ``seq``, each
        of which emitted one event."""
        self._outlier = None
        self._seq = self._last_seq = seq
        self._k = 1
        self._started = True

    def feed_event(self, payload: bytes | str | Mapping[str, Any]) -> list[ev.Event]:
        """Feed one wire event: a JSON object (bytes or str, e.g. a JSONL line) or a dict."""
        self._check_open()
        if isinstance(payload, Mapping):
            encoded = self._encoded(payload, "an event")
            if encoded is None:
                return self._take()
            payload = encoded
        self._payload(payload, complete=True)
        return self._take()

    def feed_response(self, response: bytes | str | Mapping[str, Any]) -> list[ev.Event]:
        """Feed a finished non-streaming ``Response`` (JSON, or a dict such as ``model_dump()``).

        Yields the same item-level events as the stream of that response would.
        """
        self._check_open()
        if isinstance(response, Mapping):
            encoded = self._encoded(response, "the response object")
            if encoded is None:
                return self._take()
            response = encoded
        try:
            resp = wire.decode_response(response)
        except wire.NestingTooDeep:
            self._too_deep("the response object")
            return self._take()
        except (msgspec.DecodeError, UnicodeError) as exc:
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
            self._frame(frame)
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
        self._items: dict[int, Record] = {}
        self._next_index = 0
        self._by_id: dict[str, Record] = {}
        self._final: dict[int, Json] = {}
        self._plain_texts: held.Plain = {}
        self._container_id: str | None = None
        self._shell_commands: dict[int, int] = {}
        self._shell_calls: dict[str, Record] = {}
        self._shell_pending: dict[str, Json] = {}

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this Assembler was closed; create a new Assembler for another stream")

    def _take(self) -> list[ev.Event]:
        out, self._out = self._out, []
        return out

    def _skipped(self, code: str, message: str) -> None:
        """A frame that could not be read: reported, unless its response already ended
        (nothing may follow an end; it is counted in ``ignored_after_end``)."""
        if self._ended:
            self.ignored_after_end += 1
        else:
            self._error(code, message)

    def _oversized(self, frame: OversizedFrame) -> None:
        self._skipped(
            "frame_too_large",
            f"an event of more than {frame.limit} bytes was dropped (max_frame_bytes); "
            "raise max_frame_bytes if such events are expected",
        )

    def _too_deep(self, what: str) -> None:
        self._skipped(
            "too_deeply_nested",
            f"{what} nested more than {wire.MAX_DEPTH} levels deep and was skipped; the "
            "Responses API never nests that deep, so the source is corrupt or hostile",
        )

    def _encoded(self, payload: Mapping[str, Any], what: str) -> bytes | None:
        """A dict handed in, as the JSON it stands for; None (reported) if it has none."""
        try:
            return msgspec.json.encode(payload)
        except RecursionError:
            self._too_deep(what)
        except TypeError as exc:
            self._skipped("invalid_event", f"{what} is not JSON ({exc}); it was skipped")
        except UnicodeEncodeError as exc:  # a lone surrogate, which Python's json reads
            self._skipped(
                "invalid_event",
                f"{what} holds text that is not valid Unicode ({exc}); it was skipped",
            )
        return None

    def _frame(self, frame: Frame | OversizedFrame) -> None:
        if isinstance(frame, OversizedFrame):
            self._oversized(frame)
        else:
            self._payload(frame.data, complete=frame.complete)

    def _payload(self, data: wire.Payload, *, complete: bool) -> None:
        if data == b"[DONE]" or data == "[DONE]":
            return
        if not isinstance(data, str) and len(data) >= held.LARGE_PAYLOAD:
            holding = self._holding(data)
            if holding is not None:
                self._safely(holding[0])
                return
        try:
            event = wire.decode_event(data)
        except msgspec.ValidationError as exc:  # a DecodeError subclass: catch it first
            self._skipped(
                "invalid_event",
                f"an event did not have the shape the Responses API documents ({exc}); "
                "it was skipped",
            )
            return
        except wire.NestingTooDeep:  # a DecodeError subclass too
            self._too_deep("an event")
            return
        except (UnicodeError, msgspec.DecodeError) as exc:
            if not complete:
                self._skipped(
                    "cut_off_event",
                    "the stream ended in the middle of an event; the partial event was skipped",
                )
            elif isinstance(exc, UnicodeError):  # str payloads: a lone surrogate
                self._skipped(
                    "invalid_utf8", f"an event was not valid UTF-8 and was skipped: {exc}"
                )
            else:
                self._skipped("invalid_json", f"an event was not valid JSON and was skipped: {exc}")
            return
        self._safely(event)

    def _decoded_large(self, data: Data) -> tuple[Any, Data]:
        """A large payload of :meth:`_plain` decoded (None if it does not decode as a
        known event), with the payload to measure its depth on: the shorter one it was
        read from if it repeats held texts."""
        holding = self._holding(data)
        if holding is not None:
            return holding
        try:
            return wire.decode_known(data), data
        except Exception:
            return None, data

    def _holding(self, data: bytes | bytearray) -> tuple[Any, bytes] | None:
        """``data`` decoded without decoding again the long texts it shares with the
        items (see :mod:`.held`); None if it shares none, and it is decoded as usual."""
        texts: list[held.Held] = []
        records = list(self._items.values())
        # The item added last first (the done events of one item), then all in order (a
        # response's output): see held._spans.
        for record in records[-1:] + records[:-1]:
            for part in record.parts.values():
                texts.append(part.text if part.text is not None else part.streamed)
            texts += [record.code, *record.arguments.values()]
        for final in self._final.values():
            code = final.get("code")
            if isinstance(code, str) and len(code) >= held.LONG_TEXT:
                texts.append(code)
        try:
            return held.decode_holding(data, texts, self._plain_texts)
        except Exception:  # a bug there must not cost the event: it is decoded as usual
            return None

    def _safely(self, event: wire.WireEvent | wire.Unrecognized, *, placed: bool = False) -> None:
        """Dispatch ``event`` (to its handler only, if it was ``placed`` in the sequence)."""
        try:
            if placed:
                self._handlers[type(event)](event)
            else:
                self._dispatch(event)
        except Exception as exc:  # a bug must not lose what was already rebuilt
            self._error(
                "unprocessable_event",
                f"respflow could not process a {type_of(event)} event ({exc!r}); it was "
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
        if seq is not None and not self._placed(seq, event):
            self.duplicates += 1
            return
        self._started = True
        if type(event) is wire.Unrecognized:
            if event.type not in wire.ABSORBED_TYPES:
                self._emit(
                    ev.Unknown,
                    raw=event.raw,
                )
            return
        self._handlers[type(event)](event)

    def _placed(self, seq: int, event: wire.WireEvent | wire.Unrecognized) -> bool:
        """Take the event's sequence number as the stream's position; False: a duplicate."""
        last = self._last_seq
        if seq >= 0 and last is not None and seq <= last:
            return False
        before = -1 if last is None else last
        if seq < 0 or seq - before > self._max_jump:
            outlier, self._outlier = self._outlier, seq
            confirmed = seq >= 0 and outlier is not None and 0 < seq - outlier <= self._max_jump
            if not confirmed:
                self._error(
                    "implausible_sequence_number",
                    f"a {type_of(event)} event has sequence_number {seq}, implausibly far "
                    f"from the last one ({'none yet' if last is None else last}): it was "
                    "processed, but its number was not taken as the stream's position (the "
                    "resume cursor). If this server really numbers events that sparsely, "
                    "raise Assembler(max_sequence_jump=...)",
                )
                return True
        self._outlier = None
        self._seq, self._k, self._last_seq = seq, 0, seq
        if seq != before + 1:
            self._emit(ev.StreamGap, expected=before + 1, received=seq)
        return True

    def _begin(self, rid: str) -> None:
        """A new response starts: forget the previous one (its end was already emitted)."""
        if self._started:
            self._reset_response()
            self._resumed = False
            self._last_seq = None
            self._outlier = None
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
        matched: set[int] = set()  # id() of the output items a streamed item matched
        for index in sorted(self._items):
            item = self._items[index]
            final = by_id.get(item.item_id)
            if final is None and index < len(output) and _same_kind(output[index], item):
                final = output[index]
            if final is not None:
                matched.add(id(final))
            if index not in self._final:
                self._complete(item, final if final is not None else self._rebuild(item))
        # Items the stream never showed (a non-streaming response has only these).
        for position, final in enumerate(output):
            if id(final) in matched:
                continue
            index = position if position not in self._items else self._next_index
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

    def _on_item_added(self, event: wire.OutputItemAdded) -> None:
        index = event.output_index
        if index is None:
            index = self._next_index
        item = self._new_item(index, event.item)
        if item.kind in ("code", "shell"):
            self._emit_code_started(item)

    def _on_item_done(self, event: wire.OutputItemDone) -> None:
        final = event.item
        index = event.output_index
        if index is None or index not in self._items:
            # An item added under another index (or none) is still the one its id names.
            found = self._by_id.get(str(final.get("id") or ""))
            if found is not None:
                index = found.index
            elif index is None:
                index = self._next_index
        if index in self._final:
            return
        item = self._items.get(index)
        if item is None:
            item = self._new_item(index, final)
        self._complete(item, final)

    def _complete(self, item: Record, final: Json) -> None:
        self._final[item.index] = final
        if item.kind == "code":
            self._complete_code(item, final)
        elif item.kind == "message":
            self._complete_message(item, final)
        elif item.kind == "shell":
            self._complete_shell_call(item, final)
        else:
            item.arguments = {}  # the item is finished: what streamed is read no more
            if item.kind == "shell_output":
                self._complete_shell_output(item, final)
            self._emit(
                ev.ItemCompleted,
                item_id=text_or_none(final.get("id")) or item.item_id or None,
                output_index=item.index,
                item_type=str(final.get("type") or "unknown"),
                status=text_or_none(final.get("status")),
                item=final,
            )

    def _rebuild(self, item: Record) -> Json:
        """The item as far as it arrived, for one the response ended without finishing."""
        rebuilt = dict(item.added)
        rebuilt["status"] = "incomplete"
        if item.kind == "code":
            rebuilt["code"] = item.code.text()
            rebuilt["outputs"] = None
        elif item.kind == "shell":
            action = dict(rebuilt.get("action") or {})
            action["commands"] = item.code.text().split("\n") if item.code else []
            rebuilt["action"] = action
        elif item.kind == "message":
            rebuilt["content"] = [
                {
                    "type": "output_text",
                    "text": part.text if part.text is not None else part.streamed.text(),
                    "annotations": [part.annotations[i] for i in sorted(part.annotations)],
                }
                for _, part in sorted(item.parts.items())
            ]
        for field, streamed in item.arguments.items():
            rebuilt[field] = streamed.text()
        return rebuilt

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
            streamed = item.arguments.get(field)
            if streamed is None:
                streamed = item.arguments[field] = Streamed()
            streamed.add(event.delta)
        else:
            value = getattr(event, field)
            if isinstance(value, str):
                streamed = item.arguments[field] = Streamed()
                streamed.replace(value)


def _same_kind(final: Json, item: Record) -> bool:
    return kind_of(final) == item.kind
