"""One reader's server-sent events in a UI protocol, from the start or resumed.

:class:`ProtocolStream` is sans-I/O, like the encoders under it: feed it a response's
respflow events from the first (a broker's whole log), and it returns the bytes to send.
Every frame has an ``id:``: one respflow event often makes several frames, so the last
frame of an event carries the event's cursor and the frames before it ``<cursor>:<n>``.
A reader that comes back with any of them (``Last-Event-ID``) gets what it had not seen:

- **AG-UI**: the events before its id are fed but not sent; then the prelude
  (``RUN_STARTED``, a ``MESSAGES_SNAPSHOT``, the open items re-opened) and exactly the
  events after its cursor. A reader cut inside an event's frames gets that whole event
  again after the prelude: the snapshot is taken before it, so nothing is counted twice.
- **Vercel**: with no id, the response from its ``start`` (what ``useChat``'s
  ``resumeStream`` expects: it replays); with an id, exactly the chunks after that frame,
  for a reader that kept its state.

Either way the stream ends with the protocol's end (and ``data: [DONE]`` for Vercel),
also when the events stop before the response's end: a client never hangs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .. import _events as ev
from .._events import parse_cursor
from ._steps import dump_json
from .agui import AGUIEncoder
from .vercel import VercelEncoder

__all__ = ["PROTOCOLS", "Protocol", "ProtocolStream", "parse_frame_id"]

Protocol = Literal["ag-ui", "vercel"]
PROTOCOLS: tuple[Protocol, ...] = ("ag-ui", "vercel")
"""The protocols a :class:`ProtocolStream` speaks (``?format=`` on the app's events)."""

_SSE = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
_HEADERS: Mapping[str, Mapping[str, str]] = {
    "ag-ui": _SSE,
    "vercel": {**_SSE, "x-vercel-ai-ui-message-stream": "v1"},
}
_DONE = b"data: [DONE]\n\n"


def parse_frame_id(frame_id: str) -> tuple[tuple[int, int], int | None]:
    """``"12-3"`` -> ``((12, 3), None)`` (after all of event 12-3); ``"12-3:1"`` ->
    ``((12, 3), 1)`` (after its frame 1). Raises ValueError for anything else."""
    cursor, colon, index = frame_id.partition(":")
    if not colon:
        return parse_cursor(cursor), None
    if not (index.isdigit() and index.isascii()) or len(index) > 9:  # as parse_cursor
        raise ValueError(f"not a frame id: {frame_id!r} (expected '<seq>-<k>' or '<seq>-<k>:<n>')")
    return parse_cursor(cursor), int(index)


class ProtocolStream:
    """A reader's frames of one response in ``protocol`` (``"ag-ui"`` or ``"vercel"``).

    Args:
        protocol: which UI protocol to speak.
        after: the last frame id the reader got (its ``Last-Event-ID``), if it resumes.
        thread_id: AG-UI's ``threadId`` (the response id when not given).
        inline_images: see :class:`AGUIEncoder` / :class:`VercelEncoder`.

    Raises:
        ValueError: ``protocol`` is not one of :data:`PROTOCOLS`, or ``after`` is not a
            frame id.
    """

    def __init__(
        self,
        protocol: Protocol | str,
        *,
        after: str | None = None,
        thread_id: str | None = None,
        inline_images: bool = True,
    ) -> None:
        self.encoder: AGUIEncoder | VercelEncoder
        self.protocol: Protocol
        if protocol == "ag-ui":
            self.protocol = "ag-ui"
            self.encoder = AGUIEncoder(thread_id=thread_id, inline_images=inline_images)
        elif protocol == "vercel":
            self.protocol = "vercel"
            self.encoder = VercelEncoder(inline_images=inline_images)
        else:
            raise ValueError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        self._after = parse_frame_id(after) if after else None
        self._response_id: str | None = None
        self._ended = False

    @property
    def headers(self) -> Mapping[str, str]:
        """The HTTP headers this protocol's clients expect (content type included)."""
        return _HEADERS[self.protocol]

    def feed(self, event: ev.Event) -> bytes:
        """The frames to send for the response's next event (often empty while resuming)."""
        self._response_id = event.response_id
        self._ended = self._ended or isinstance(event, ev.END_TYPES)
        if self._after is None:
            return self._frames(event, self.encoder.feed(event))
        target, index = self._after
        cursor = parse_cursor(event.cursor)
        if cursor < target or (cursor == target and index is None):
            self.encoder.feed(event)  # seen by the reader already
            if cursor == target:
                return self._resume()
            return b""
        # The reader has not seen all of this event: the prelude (taken before it), then
        # the event's frames, or for Vercel those after the last one it got.
        prelude = self._resume()
        frames = self.encoder.feed(event)
        skip = index + 1 if cursor == target and index is not None and self._vercel else 0
        return prelude + self._frames(event, frames, skip)

    def close(self, reason: str | None = None) -> bytes:
        """The last bytes, when the events stop: the protocol's end if the response did
        not end (``reason`` says why, if known), then Vercel's ``[DONE]``."""
        out = b""
        if self._after is not None and self._response_id is not None:
            out += self._resume()  # resumed after the last event there is
        if not self._ended:
            out += b"".join(self._frame(None, event) for event in self.encoder.close(reason))
        return out + (_DONE if self._vercel else b"")

    @property
    def _vercel(self) -> bool:
        return self.protocol == "vercel"

    def _resume(self) -> bytes:
        self._after = None
        if isinstance(self.encoder, AGUIEncoder) and self._response_id is not None:
            # The prelude has no ids: the reader's last id stays its place until new frames.
            return b"".join(self._frame(None, e) for e in self.encoder.resume(self._response_id))
        return b""

    def _frames(self, event: ev.Event, payloads: list[dict[str, Any]], skip: int = 0) -> bytes:
        last = len(payloads) - 1
        return b"".join(
            self._frame(event.cursor if n == last else f"{event.cursor}:{n}", payload)
            for n, payload in enumerate(payloads)
            if n >= skip
        )

    @staticmethod
    def _frame(frame_id: str | None, payload: dict[str, Any]) -> bytes:
        head = b"id: " + frame_id.encode() + b"\n" if frame_id is not None else b""
        return head + b"data: " + dump_json(payload) + b"\n\n"
