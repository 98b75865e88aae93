"""A recording cut into the events a server would send, for the mock server to replay."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .._core import wire
from .._core.sse import OversizedFrame, SSEDecoder
from .._delivery.recorder import FRAME_END
from .._exceptions import RecordingError
from .._sources.recording import RecordingFormat, _detect

__all__ = ["RecordedEvent", "Recording"]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _Head(msgspec.Struct):
    type: Any = None
    sequence_number: Any = None
    response: Any = None


_head_decoder = msgspec.json.Decoder(_Head)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as the server sends it: its JSON payload and what resuming needs."""

    payload: bytes
    type: str
    sequence_number: int
    raw: bytes | None = None
    """The frame's bytes as recorded (its line ends, comments, ``id:`` lines), when it
    came from an event stream: served as they are, so a replay is byte for byte."""

    def frame(self) -> bytes:
        """The event as one server-sent-events frame."""
        if self.raw is not None:
            return self.raw
        return b"event: " + self.type.encode() + b"\ndata: " + self.payload + b"\n\n"


@dataclass(frozen=True, slots=True)
class Recording:
    """A Responses API exchange to replay: the stream's events and the final response.

    Build one with :meth:`from_bytes` / :meth:`from_file` (SSE, JSONL or Response JSON,
    told apart by content) or :meth:`from_events`. A Response JSON recording is turned
    into the stream a server would have sent for it, so streaming requests work too.
    """

    events: tuple[RecordedEvent, ...]
    response: dict[str, Any] | None = field(default=None)
    """The final ``Response`` object, served to non-streaming requests."""

    @property
    def response_id(self) -> str:
        """The recorded response's id ("" when the recording never says)."""
        if self.response and isinstance(self.response.get("id"), str):
            return str(self.response["id"])
        for event in self.events:
            try:
                head = wire.decode_bounded(_head_decoder.decode, event.payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            if isinstance(head.response, dict) and isinstance(head.response.get("id"), str):
                return str(head.response["id"])
        return ""

    def to_sse(self) -> bytes:
        """The body of the ``text/event-stream`` response the mock server sends."""
        return b"".join(event.frame() for event in self.events)

    def in_background(self) -> Recording:
        """The same exchange as a ``background=True`` request gets it: every response
        object the stream carries says ``"background": true``."""
        events = []
        for event in self.events:
            if event.type.startswith("response.") and b'"response"' in event.payload:
                # Its payload changes: framed anew (raw=None), the rest stay as recorded.
                try:
                    body = wire.decode_json(event.payload)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    body = None
                if isinstance(body, dict) and isinstance(body.get("response"), dict):
                    body["response"]["background"] = True
                    event = RecordedEvent(
                        msgspec.json.encode(body), event.type, event.sequence_number
                    )
            events.append(event)
        response = {**self.response, "background": True} if self.response else None
        return Recording(events=tuple(events), response=response)

    def with_ids(self, ids: dict[str, str]) -> Recording:
        """The same exchange under other ids: every JSON string equal to a key of ``ids``
        (a response, container or file id) becomes its value."""
        if not ids:
            return self
        quoted = [
            (b'"' + old.encode() + b'"', b'"' + new.encode() + b'"') for old, new in ids.items()
        ]

        def renamed(payload: bytes) -> bytes:
            for old, new in quoted:
                payload = payload.replace(old, new)
            return payload

        events = tuple(
            RecordedEvent(
                renamed(e.payload),
                e.type,
                e.sequence_number,
                None if e.raw is None else renamed(e.raw),
            )
            for e in self.events
        )
        response = None
        if self.response is not None:
            response = msgspec.json.decode(renamed(msgspec.json.encode(self.response)))
        return Recording(events=events, response=response)

    @classmethod
    def from_file(cls, path: str | Path) -> Recording:
        return cls.from_bytes(Path(path).read_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, format: RecordingFormat | None = None) -> Recording:
        """Raises :class:`respflow.RecordingError` when ``data`` is no recording."""
        fmt, array = (format, None) if format is not None else _detect(data)
        body = data.removeprefix(b"\xef\xbb\xbf")
        if fmt == "events":
            raise RecordingError(
                "this is respflow's own log of normalized events, not a Responses API "
                "recording: replay it with `respflow replay`; a mock serves wire streams"
            )
        if fmt == "response":
            return cls.from_response(wire.decode_json(body))
        if fmt == "sse":
            return cls._from_sse(data)
        if array is not None:
            return cls.from_events([bytes(raw) for raw in array])
        return cls.from_events([line for line in body.splitlines() if line.strip()])

    @classmethod
    def _from_sse(cls, data: bytes) -> Recording:
        """Each event with the raw bytes of its frame; bytes that are no event (a comment,
        a BOM, ``[DONE]``) go out with the frame after them, or the last one."""
        payloads: list[bytes] = []
        raws: list[bytes] = []
        before = b""
        for piece in _raw_frames(data):
            decoder = SSEDecoder()
            frames = [*decoder.feed(before + piece), *decoder.close()]
            data_of = [f.data for f in frames if not isinstance(f, OversizedFrame)]
            if len(data_of) == 1 and data_of[0] != b"[DONE]":
                payloads.append(data_of[0])
                raws.append(before + piece)
                before = b""
            elif not data_of or data_of == [b"[DONE]"]:
                before += piece
            else:  # not one frame after all: served framed anew
                return cls.from_events([d for d in data_of if d != b"[DONE]"])
        if not raws:
            return cls.from_events(payloads)
        raws[-1] += before
        recording = cls.from_events(payloads)
        events = tuple(
            RecordedEvent(e.payload, e.type, e.sequence_number, raw)
            for e, raw in zip(recording.events, raws, strict=True)
        )
        return cls(events=events, response=recording.response)

    @classmethod
    def from_events(cls, events: list[Any]) -> Recording:
        """From wire events: JSON payloads (bytes or str) or dicts."""
        out: list[RecordedEvent] = []
        response: dict[str, Any] | None = None
        for position, raw in enumerate(events):
            payload = msgspec.json.encode(raw) if isinstance(raw, dict) else _as_bytes(raw)
            try:
                head = wire.decode_bounded(_head_decoder.decode, payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                head = _Head()
            kind = head.type if isinstance(head.type, str) else "message"
            seq = head.sequence_number if isinstance(head.sequence_number, int) else position
            out.append(RecordedEvent(payload=payload, type=kind, sequence_number=seq))
            if kind in _TERMINAL and isinstance(head.response, dict):
                response = head.response
        return cls(events=tuple(out), response=response)

    @classmethod
    def from_response(cls, response: dict[str, Any]) -> Recording:
        """The stream a server sends for a finished response: lifecycle, items, the end."""
        output = [o for o in response.get("output") or () if isinstance(o, dict)]
        opening = {**response, "status": "in_progress", "output": [], "usage": None}
        status = response.get("status")
        end = {"completed": "completed", "incomplete": "incomplete"}.get(str(status), "failed")
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": opening},
            {"type": "response.in_progress", "response": opening},
        ]
        for index, item in enumerate(output):
            events.append(
                {"type": "response.output_item.added", "output_index": index, "item": item}
            )
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        events.append({"type": f"response.{end}", "response": response})
        for seq, event in enumerate(events):
            event["sequence_number"] = seq
        return cls.from_events(events)


def _raw_frames(data: bytes) -> list[bytes]:
    """``data`` cut after each blank line: the frames, as they were recorded."""
    cuts = [0, *(match.end() for match in FRAME_END.finditer(data))]
    if cuts[-1] != len(data):
        cuts.append(len(data))
    return [data[start:end] for start, end in itertools.pairwise(cuts)]


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode()
    return msgspec.json.encode(raw)
