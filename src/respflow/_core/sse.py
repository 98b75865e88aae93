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

Nearly every frame the Responses API sends is ``event: <type>\ndata: <json>`` with LF line
ends. :meth:`SSEDecoder.feed_data` (what the assembler uses) hands such a *plain* frame over
as its data alone, with no :class:`Frame` around it, and takes everything else through
the same line-by-line rules as :meth:`SSEDecoder.feed`, so its output says the same
whatever the chunking. Between frames the bytes of a frame not yet complete are kept as
they came, and a large one is completed in place, never copied again.
"""

from __future__ import annotations

import msgspec

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Frame", "OversizedFrame", "SSEDecoder"]

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""The largest frame kept: a ``response.completed`` with inline images can reach megabytes."""

_BOM = b"\xef\xbb\xbf"
# Event names seen, decoded once. An empty "event:" line names no type, so its frame is a
# "message", as the event-stream rules give it.
_NAMES: dict[bytes, str] = {b"": "message"}

Data = bytes | bytearray
"""The data of a plain frame (a large one is handed over in the buffer it was built in)."""
_REGION = 32 * 1024


class Frame(msgspec.Struct, gc=False):
    """One dispatched event-stream frame: its ``data`` (bytes), ``event`` name, ``id`` and
    ``retry``, read by the event-stream rules."""

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

    @property
    def pending(self) -> int:
        """About how many bytes of a frame not yet complete are held."""
        return len(self._partial) + self._frame_bytes

    def feed(self, chunk: bytes) -> list[Frame | OversizedFrame]:
        chunk = self._after_head(chunk)
        if not chunk:
            return []
        return self._feed_lines(chunk)

    def feed_data(self, chunk: bytes) -> list[Data | Frame | OversizedFrame]:
        """As :meth:`feed`, but a plain frame (``event: <name>`` if any, then one ``data:``
        line; LF line ends) comes out as its data alone.

        For a reader that needs nothing of such a frame but its data: its event name goes
        unread, and it has no ``id`` or ``retry`` line, so none is lost.
        """
        chunk = self._after_head(chunk)
        if not chunk:
            return []
        if self._pending_cr or b"\r" in chunk:
            return list(self._feed_lines(chunk))
        out: list[Data | Frame | OversizedFrame] = []
        if self._in_frame():
            # A frame begun line by line ends line by line; plain frames may follow it.
            end = chunk.find(b"\n\n")
            if end < 0:
                return list(self._feed_lines(chunk))
            out += self._feed_lines(chunk[: end + 2])
            chunk = chunk[end + 2 :]
            if self._in_frame():
                return out + self._feed_lines(chunk)
        return out + self._plain(chunk)

    def _after_head(self, chunk: bytes) -> bytes:
        """``chunk`` without the BOM the stream may open with ("" while that is unsure)."""
        if self._head is None:
            return chunk
        head = self._head + chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _in_frame(self) -> bool:
        """Whether lines of a frame (or of one being skipped) were read and its end was not."""
        return bool(
            self._data or self._event or self._skipping or self._discard_line or self._frame_bytes
        )

    def _plain(self, chunk: bytes) -> list[Data | Frame | OversizedFrame]:
        """:meth:`feed_data` between frames, for a chunk with no CR.

        Between frames the rules give a frame the same result whether its lines are read
        one by one as they arrive or all at once when its blank line does, so the bytes of
        a frame not yet complete wait in ``_partial`` as they came. Whatever could pass
        the size cap goes line by line, where the cap is kept.
        """
        out: list[Data | Frame | OversizedFrame] = []
        partial = self._partial
        start = 0
        if partial:
            straddles = partial.endswith(b"\n") and chunk.startswith(b"\n")
            end = -1 if straddles else chunk.find(b"\n\n")
            if not straddles and end < 0:
                if len(partial) + len(chunk) > self._max:
                    return out + self._feed_lines(chunk)
                partial += chunk
                return out
            # What the line-by-line rules count for the frame: its lines and their ends.
            size = len(partial) if straddles else len(partial) + end + 1
            if size > self._max:
                return out + self._feed_lines(chunk)
            if straddles:
                del partial[-1:]
                start = 1
            else:
                partial += memoryview(chunk)[:end]
                start = end + 2
            self._partial = bytearray()
            out += self._completed(partial)
        last = chunk.rfind(b"\n\n", start)
        if last < 0:
            return out + self._keep(chunk, start)
        if last - start + 1 > self._max:
            return out + self._feed_lines(chunk[start:])
        while start < last:
            # A few tens of kilobytes at a time: the lines of a whole recording at once
            # are slower to cut than the same lines in pieces.
            end = chunk.find(b"\n\n", start + _REGION, last + 2)
            end = last if end < 0 else end
            out += self._frames_in(chunk[start:end])
            start = end + 2
        return out + self._keep(chunk, last + 2)

    def _frames_in(self, region: bytes) -> list[Data | Frame | OversizedFrame]:
        """The frames of complete lines between frames, cut off by a blank line."""
        data = _all_plain(region.split(b"\n"))
        if data is not None:
            return list(data)
        out: list[Data | Frame | OversizedFrame] = []
        for segment in region.split(b"\n\n"):
            data = _all_plain(segment.split(b"\n"))
            if data is not None:
                out += data
            else:
                out += self._lines(segment.split(b"\n"))
                out += self._lines([b""])
        return out

    def _keep(self, chunk: bytes, start: int) -> list[Frame | OversizedFrame]:
        """The bytes after the last complete frame wait for the next chunk."""
        if len(chunk) - start > self._max:
            return self._feed_lines(chunk[start:])
        self._partial = bytearray(memoryview(chunk)[start:])
        return []

    def _completed(self, frame: bytearray) -> list[Data | Frame | OversizedFrame]:
        """A frame whose bytes were gathered in ``frame`` and whose blank line came: its
        data (``frame`` itself, cut down in place) if it is plain, else its frames."""
        if frame.startswith(b"data: "):
            start = 6
        elif frame.startswith(b"event: "):
            nl = frame.find(b"\n")
            start = nl + 7 if nl > 0 and frame.startswith(b"data: ", nl + 1) else -1
        else:
            start = -1
        if start > 0 and frame.find(b"\n", start) < 0:
            del frame[:start]
            return [frame]
        out: list[Data | Frame | OversizedFrame] = []
        return out + self._lines(bytes(frame).split(b"\n")) + self._lines([b""])

    def _feed_lines(self, chunk: bytes) -> list[Frame | OversizedFrame]:
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
            # Between frames it may hold several lines (see _plain); the last, cut off,
            # counts as a line, and nothing after a final LF does.
            lines = bytes(self._partial).split(b"\n")
            self._partial = bytearray()
            if not lines[-1]:
                lines.pop()
            out += self._lines(lines)
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
                retry = _retry(value)
                if retry is not None:
                    self._retry = retry
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


def _retry(value: bytes) -> int | None:
    """A ``retry`` field's delay, if its value is one: ASCII digits, below 2**64.

    int() refuses more than 4,300 digits (a ValueError out of ``feed``), so leading zeros
    go first and a longer value is ignored as a delay past 64 bits is by browsers.
    """
    if not value.isdigit():
        return None
    digits = value.lstrip(b"0")
    if len(digits) > 20:
        return None
    delay = int(digits or b"0")
    return delay if delay < 2**64 else None


def _all_plain(lines: list[bytes]) -> list[bytes] | None:
    """The data of the frames these complete lines make, if every one is plain: all
    ``event:`` then ``data:`` frames, or all ``data:`` frames; else None.

    Checked and cut with a few calls over all the lines at once (a line holds no LF, so
    in lines joined by LF each LF starts a line), not with a few calls per frame.
    """
    if len(lines) % 3 == 2 and not any(lines[2::3]):
        names = lines[0::3]
        if (b"\n" + b"\n".join(names)).count(b"\nevent: ") == len(names):
            data = _data(lines[1::3])
            if data is not None:
                return data
    if len(lines) % 2 == 1 and not any(lines[1::2]):
        return _data(lines[0::2])
    return None


def _data(lines: list[bytes]) -> list[bytes] | None:
    """What follows ``data: `` on each of these lines, if each is such a line."""
    data = (b"\n" + b"\n".join(lines)).split(b"\ndata: ")
    return data[1:] if len(data) == len(lines) + 1 else None
