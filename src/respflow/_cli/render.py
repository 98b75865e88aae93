"""Rendering normalized events for a person reading a terminal."""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import _events as ev

__all__ = ["PrettyRenderer", "shown"]

_STYLES = {
    "head": "\x1b[1;36m",
    "code": "\x1b[33m",
    "dim": "\x1b[2m",
    "ok": "\x1b[32m",
    "warn": "\x1b[1;33m",
    "bad": "\x1b[1;31m",
    "file": "\x1b[35m",
}
_RESET = "\x1b[0m"
# The C0 controls other than tab, LF and CR (progress bars use it), DEL and the C1
# controls: what is shown is the model's or its code's, and an ESC, CSI or OSC sequence
# in it would drive the reader's terminal (retitle it, write its clipboard, hide lines).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """``text`` with its control characters shown as escapes (``\\x1b``), not acted on:
    for anything from the network that goes to a terminal."""
    return _CONTROLS.sub(_escape, text) if _CONTROLS.search(text) else text


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class PrettyRenderer:
    """Writes events as they come: code as it is typed, output, citations, the answer."""

    def __init__(self, write: Callable[[str], object], *, color: bool = False) -> None:
        self._write = write
        self._color = color
        self._at_line_start = True
        self._answering: str | None = None
        self._streaming_output = False

    def _style(self, name: str, text: str) -> str:
        return f"{_STYLES[name]}{text}{_RESET}" if self._color else text

    def _out(self, text: str) -> None:
        """Writes ``text`` as it is: what came from the stream went through shown."""
        if text:
            self._write(text)
            self._at_line_start = text.endswith("\n")

    def _line(self, name: str, text: str) -> None:
        if not self._at_line_start:
            self._out("\n")
        self._out(self._style(name, shown(text)) + "\n")

    def render(self, event: ev.Event) -> None:
        match event:
            case ev.ResponseStarted(model=model, background=background):
                mode = ", background" if background else ""
                self._line("head", f"▶ response {event.response_id} ({model or '?'}{mode})")
            case ev.CodeStarted(tool=tool, container_id=container):
                where = f" in {container}" if container else ""
                self._line("head", f"── code ({tool}{where}) ──")
            case ev.CodeDelta(delta=delta):
                self._out(self._style("code", shown(delta.replace("\r\n", "\n"))))
            case ev.CodeDone():
                if not self._at_line_start:
                    self._out("\n")
            case ev.CodeInterpreting():
                self._line("dim", "… running")
            case ev.CodeOutput(delta=delta):
                if not self._streaming_output:
                    self._streaming_output = True
                    self._line("head", "── output ──")
                self._out(shown(delta))
            case ev.CodeLogs() if self._streaming_output:
                self._streaming_output = False  # it streamed already: the whole adds nothing
                if not self._at_line_start:
                    self._out("\n")
            case ev.CodeLogs(logs=logs):
                self._line("head", "── output ──")
                self._out(shown(logs if logs.endswith("\n") else logs + "\n"))
            case ev.CodeImage(url=url):
                self._line("file", f"[image {_describe_url(url)}]")
            case ev.CodeOutputsMissing(reason=reason, hint=hint):
                self._line("warn", f"⚠ no output ({reason}): {hint}")
            case ev.CodeCompleted(status=status):
                if status != "completed":
                    self._line("warn", f"⚠ code call ended {status}")
            case ev.TextDelta(item_id=item_id, delta=delta):
                if self._answering != item_id:
                    self._answering = item_id
                    self._line("head", "── answer ──")
                self._out(shown(delta))
            case ev.TextDone():
                if not self._at_line_start:
                    self._out("\n")
            case ev.ReasoningDone(text=text):
                self._line("dim", f"(thinking) {text}")
            case ev.FileCited(filename=filename, file_id=file_id, container_id=container):
                where = f" in {container}" if container else ""
                self._line("file", f"📎 cited {filename or file_id} ({file_id}{where})")
            case ev.FileLink(path=path):
                self._line("warn", f"⚠ link with no citation: sandbox:{path}")
            case ev.FileSaved(filename=filename, location=location, size=size):
                maker = f", made by {event.produced_by}" if event.produced_by else ""
                self._line("ok", f"✔ saved {filename} ({size} bytes{maker}) → {location}")
            case ev.FileFailed(file_id=file_id, reason=reason, hint=hint):
                self._line("bad", f"✖ could not save {file_id}: {reason}. {hint}")
            case ev.MessageCompleted(status=status):
                if status != "completed":
                    self._line("warn", f"⚠ message ended {status}")
            case ev.ItemCompleted(item_type=item_type, status=status):
                self._line("dim", f"· {item_type} {status or 'done'}")
            case ev.ResponseCompleted(usage=usage):
                self._line("ok", f"✔ completed{_usage(usage)}")
            case ev.ResponseIncomplete(incomplete_details=details):
                reason = (details or {}).get("reason", "unknown reason")
                self._line("warn", f"⚠ incomplete: {reason}")
            case ev.ResponseFailed(error=error):
                message = (error or {}).get("message", "no error message")
                self._line("bad", f"✖ failed: {message}")
            case ev.StreamError(code=code, message=message, fatal=fatal):
                self._line("bad" if fatal else "warn", f"✖ {code}: {message}")
            case ev.StreamGap(expected=expected, received=received):
                self._line("warn", f"⚠ events {expected}..{received - 1} are missing")
            case ev.StreamTruncated(message=message):
                self._line("bad", f"✖ truncated: {message}")
            case ev.Unknown(raw=raw):
                self._line("dim", f"· unknown event {raw.get('type')}")
            case _:
                pass


def _describe_url(url: str) -> str:
    if url.startswith("data:"):
        media = url[5:].split(";", 1)[0] or "data"
        return f"{media}, {len(url) * 3 // 4 // 1024 or 1} KiB inline"
    return url


def _usage(usage: dict[str, object] | None) -> str:
    if not usage:
        return ""
    return f" ({usage.get('input_tokens', '?')} tokens in, {usage.get('output_tokens', '?')} out)"
