"""The recorder: the raw wire of each stream, to a file, secrets removed.

A recorder taps a source (``respflow.stream(..., record=recorder)``, ``resume``,
``aiter_events``): it sees the body's bytes as they are read, before anything decodes
them, so a frame respflow cannot read is recorded too. It writes those bytes as they came,
except the secrets :mod:`.wire_redaction` removes, so the file replays to the same events
(``respflow replay``) and a mock serves it (``respflow mock-server --fixture``).

Two layouts. A folder gets one file per response, ``<response id>.sse``, written as the
bytes arrive, so a crash keeps what arrived. A file gets each response appended whole when
its stream ends, so responses that ran at once (a server's) never interleave in it.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from .._files.names import numbered, response_folder
from .redaction import redact_text, redacting_logger
from .wire_redaction import may_hold_secrets, redact_frame

__all__ = ["FRAME_END", "Recorder"]

_log = redacting_logger("respflow")

# A blank line ends a frame: two line ends in a row, each CRLF, LF or CR. The groups are
# atomic so that a lone CRLF is never read as CR then LF.
FRAME_END = re.compile(rb"(?>\r\n|\n|\r)(?>\r\n|\n|\r)")
_NO_ID = "no-response-id"


class Recorder:
    """Records the raw wire of every stream opened with ``record=`` it.

    Args:
        path: a folder (one that exists, or a string ending in ``/``; a ``Path`` drops
            the slash): one file per response, ``<response id>.sse`` (``<id> (2).sse``
            if taken); any other path: a file each response is appended to, whole, when
            its stream ends.
        per_response: say which layout instead of letting ``path`` tell.

    Recording never fails a stream: a write that fails is logged, kept in
    :attr:`failures`, and the stream goes on unrecorded.
    """

    def __init__(self, path: str | os.PathLike[str], *, per_response: bool | None = None):
        self.path = Path(path)
        if per_response is None:
            per_response = self.path.is_dir() or str(path).endswith(("/", os.sep))
        self.per_response = per_response
        self.files: list[Path] = []
        """The files written to, in the order they were first written."""
        self.failures: list[str] = []
        """What went wrong, one line each (secrets redacted)."""

    def open(self) -> WireTap:
        """A tap for one new stream (the sources call this)."""
        return WireTap(self)

    def _wrote(self, path: Path) -> None:
        if path not in self.files:
            self.files.append(path)

    def _failed(self, exc: BaseException, target: Path) -> None:
        said = redact_text(f"recording to {target} failed ({type(exc).__name__}: {exc})")
        self.failures.append(said)
        _log.warning("respflow: %s; the stream goes on unrecorded", said)


class WireTap:
    """One stream's bytes on their way into a recording.

    Complete frames pass at once (only a frame that could hold a secret is looked into);
    the frame still arriving waits for its end, so a secret split across two reads is
    still found.
    """

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._partial = bytearray()  # the frame still arriving
        self._held = bytearray()  # written frames waiting for their file
        self._response_id: str | None = None
        self._file: Path | None = None
        self._fd: int | None = None
        self._done = False
        self._cr = False  # a CR was seen: line ends are read by the full rules from then on

    def feed(self, chunk: bytes) -> None:
        if self._done:
            return
        try:
            start = max(0, len(self._partial) - 3)  # a frame end may begin in the last read
            self._partial += chunk
            end = self._last_frame_end(chunk, start)
            if end:
                region = bytes(self._partial[:end])
                del self._partial[:end]
                self._write(self._redacted(region))
        except Exception as exc:  # never the stream's failure
            self._give_up(exc)

    def reconnected(self) -> None:
        # The resumed stream sends the cut frame again, whole: its first half would run
        # into that copy's bytes.
        self._partial.clear()

    def close(self) -> None:
        if self._done:
            return
        try:
            if self._partial:  # the stream ended inside a frame: recorded as it came
                self._write(self._redacted(bytes(self._partial)))
                self._partial.clear()
            if self._held:
                self._flush(final=True)
            self._close_file()
        except Exception as exc:
            self._give_up(exc)
        self._done = True

    # -- internals ----------------------------------------------------------------------

    def _last_frame_end(self, chunk: bytes, start: int) -> int:
        """Where the last complete frame in the bytes held ends (0: none does)."""
        self._cr = self._cr or b"\r" in chunk
        if not self._cr:  # LF only, as the API sends: memrchr, not the regex engine
            found = self._partial.rfind(b"\n\n", start)
            return found + 2 if found >= 0 else 0
        end = 0
        for match in FRAME_END.finditer(self._partial, start):
            end = match.end()
        return end

    def _redacted(self, region: bytes) -> bytes:
        if not may_hold_secrets(region):
            return region
        out = []
        done = 0
        ends = [match.end() for match in FRAME_END.finditer(region)]
        if not ends or ends[-1] != len(region):
            ends.append(len(region))
        for end in ends:
            frame, rid = redact_frame(region[done:end])
            if rid is not None and self._response_id is None:
                self._response_id = rid
            out.append(frame)
            done = end
        return b"".join(out)

    def _write(self, data: bytes) -> None:
        if self._fd is not None and not self._held:  # this response's own file, open
            _write_all(self._fd, data)
            return
        self._held += data
        if self._recorder.per_response and self._response_id:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        """Write the held bytes: to this response's own file, or appended to the one file.

        Written in the caller's thread: a local write is a copy into the page cache, less
        than the thread hop that would carry it elsewhere.
        """
        recorder = self._recorder
        if self._fd is None:
            if recorder.per_response:
                self._file, self._fd = self._claim()
            else:
                self._file = recorder.path
                self._file.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            recorder._wrote(self._file)
        data = bytes(self._held)
        self._held.clear()
        _write_all(self._fd, data)
        if final:
            self._close_file()

    def _claim(self) -> tuple[Path, int]:
        """A new file of this response's own in the folder. The id came from the network:
        it is named as the storage names its folder, so two ids never share a name
        (``a/resp_1`` is not ``resp_1.sse``, whichever comes first)."""
        folder = self._recorder.path
        folder.mkdir(parents=True, exist_ok=True)
        name = (response_folder(self._response_id) if self._response_id else _NO_ID) + ".sse"
        candidate = name
        for n in range(2, 10_000):
            path = folder / candidate
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                candidate = numbered(name, n)
        raise FileExistsError(f"{folder / name} and 9,998 numbered names after it are taken")

    def _close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _give_up(self, exc: BaseException) -> None:
        self._done = True
        self._partial.clear()
        self._held.clear()
        with contextlib.suppress(OSError):
            self._close_file()
        self._recorder._failed(exc, self._file or self._recorder.path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
