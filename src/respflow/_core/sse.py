"""Server-sent events framing, sans-I/O.

Bytes go in, in chunks cut anywhere; frames come out. The rules are the WHATWG
event-stream ones: LF, CR and CRLF all end a line, a line starting with ``:`` is a
comment, ``data:`` lines accumulate (joined by LF), a blank line dispatches, a frame with
no data is not dispatched, a leading UTF-8 BOM is dropped, ``id`` persists across frames.

One departure, on purpose: the standard discards a frame that the stream ends in the
middle of. A recording whose last frame lacks its blank line is common and its data is
usually whole, so :meth:`SSEDecoder.close` hands it over marked ``complete=False`` and
lets the caller decide; the assembler reports it if it does not decode.

Data stays ``bytes`` because msgspec decodes JSON straight from bytes (and checks UTF-8
while it does), so nothing here decodes text on the hot path.
"""

from __future__ import annotations

import msgspec

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Frame", "OversizedFrame", "SSEDecoder"]

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""The largest frame kept: a ``response.completed`` with inline images can reach megabytes."""

_BOM = b"\xef\xbb\xbf"
_NAMES: dict[bytes, str] = {}  # event names seen, decoded once


class Frame(msgspec.Struct, gc=False):
    """One dispatched event-stream frame."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None
    complete: bool = True
    """False for a frame the stream ended in the middle of (no blank line after it)."""


class OversizedFrame(msgspec.Struct, gc=False):
    """A frame grew past the size cap; its bytes were discarded up to the next blank line."""

    size: int
    limit: int


class SSEDecoder:
    """Incremental event-stream decoder: ``feed(chunk)`` as bytes arrive, ``close()`` at EOF."""

    __slots__ = (
        "_data",
        "_discard_line",
        "_event",
        "_frame_bytes",
        "_head",
        "_last_id",
        "_max",
        "_partial",
        "_pending_cr",
        "_retry",
        "_skipping",
    )

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._partial = bytearray()
        self._data: list[bytes] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._frame_bytes = 0
        self._pending_cr = False
        self._skipping = False
        self._discard_line = False
        # Bytes held back until we know whether the stream opens with a BOM.
        self._head: bytes | None = b""

    def feed(self, chunk: bytes) -> list[Frame | OversizedFrame]:
        if self._head is not None:
            head = self._head + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return []
            self._head = None
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if not chunk:
            return []
        if self._pending_cr:
            self._pending_cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
            if chunk[-1] == 0x0D:
                # A CR at the end may be the first half of a CRLF split across reads.
                self._pending_cr = True
            chunk = chunk.replace(b"\r", b"\n")
        last_nl = chunk.rfind(b"\n")
        if last_nl < 0:
            self._partial += chunk
            return self._check_partial()
        if self._partial:
            self._partial += chunk[:last_nl]
            block = bytes(self._partial)
        else:
            block = chunk[:last_nl]
        self._partial = bytearray(chunk[last_nl + 1 :])
        out = self._frames(block)
        return out + self._check_partial() if self._partial else out

    def close(self) -> list[Frame | OversizedFrame]:
        """End of stream: flush a BOM-sized head and a frame left without its blank line."""
        out: list[Frame | OversizedFrame] = []
        if self._head:
            head, self._head = self._head, None
            out += self.feed(head)
        self._head = None
        if self._partial:
            tail = bytes(self._partial)
            self._partial = bytearray()
            out += self._lines([tail])
        if self._data and not self._skipping:
            out.append(self._dispatch(complete=False))
        self._data = []
        self._skipping = False
        return out

    def _check_partial(self) -> list[Frame | OversizedFrame]:
        # A line that never ends must not grow memory without bound.
        size = self._frame_bytes + len(self._partial)
        if size <= self._max:
            return []
        self._partial = bytearray()
        self._discard_line = True
        return self._overflow(size)

    def _overflow(self, size: int) -> list[Frame | OversizedFrame]:
        self._data = []
        self._frame_bytes = 0
        if self._skipping:
            return []
        self._skipping = True
        return [OversizedFrame(size=size, limit=self._max)]

    def _frames(self, block: bytes) -> list[Frame | OversizedFrame]:
        """Complete lines in; frames out.

        Nearly every frame the API sends is ``event: <type>\ndata: <json>``; those are cut
        out whole between blank lines. Anything else, and a frame already begun in an
        earlier chunk, goes line by line through :meth:`_lines`, so the result is the same
        however the bytes were chunked.
        """
        segments = block.split(b"\n\n")
        tail = segments.pop()
        out: list[Frame | OversizedFrame] = []
        mid_frame = bool(
            self._data or self._event or self._skipping or self._discard_line or self._frame_bytes
        )
        limit = self._max - 2
        for segment in segments:
            if mid_frame or len(segment) > limit:
                mid_frame = False
                out += self._lines(segment.split(b"\n"))
                out += self._lines([b""])
                continue
            if segment.startswith(b"event: "):
                nl = segment.find(b"\n")
                if (
                    nl > 0
                    and segment.startswith(b"data: ", nl + 1)
                    and segment.find(b"\n", nl + 1) < 0
                ):
                    name = segment[7:nl]
                    event = _NAMES.get(name)
                    if event is None:
                        event = name.decode("utf-8", "replace")
                        if len(_NAMES) < 512:
                            _NAMES[name] = event
                    out.append(Frame(segment[nl + 7 :], event, self._last_id, self._retry))
                    continue
            elif segment.startswith(b"data: ") and b"\n" not in segment:
                out.append(Frame(segment[6:], "message", self._last_id, self._retry))
                continue
            out += self._lines(segment.split(b"\n"))
            out += self._lines([b""])
        return out + self._lines(tail.split(b"\n"))

    def _lines(self, lines: list[bytes]) -> list[Frame | OversizedFrame]:
        out: list[Frame | OversizedFrame] = []
        for line in lines:
            if self._discard_line:
                # The rest of a line whose beginning was already thrown away.
                self._discard_line = False
                continue
            if not line:
                if self._skipping:
                    self._skipping = False
                elif self._data:
                    out.append(self._dispatch(complete=True))
                else:
                    self._event = ""
                self._frame_bytes = 0
                continue
            if self._skipping:
                continue
            self._frame_bytes += len(line) + 1
            if self._frame_bytes > self._max:
                out += self._overflow(self._frame_bytes)
                continue
            if line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            if line[0] == 0x3A:  # ":" comment, e.g. a keep-alive
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\x00" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                if value.isdigit():
                    self._retry = int(value)
            elif name == b"data":  # "data" with no colon: an empty data line
                self._data.append(b"")
        return out

    def _dispatch(self, *, complete: bool) -> Frame:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        frame = Frame(
            data=data,
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
            complete=complete,
        )
        self._data = []
        self._event = ""
        return frame
