"""respflow events as AG-UI 1.0 events, and the prelude that lets a reader resume a run.

:class:`AGUIEncoder` is sans-I/O: ``feed(event)`` returns the AG-UI events (JSON-ready
dicts) for one respflow event. Each response is one run (``runId`` is the response id):

- ``RUN_STARTED`` (``protocolVersion`` ``"1.0"``) first; the answer as
  ``TEXT_MESSAGE_*``; reasoning as ``REASONING_*`` (a span per reasoning item, a message
  per summary part); each code interpreter or shell call as ``TOOL_CALL_*`` named
  ``code_interpreter`` or ``shell``, its code streaming as the JSON arguments
  ``{"containerId", "code"}``, and its outputs as one ``TOOL_CALL_RESULT`` whose content
  parts are the logs (text) and images, with the call's status in its ``metadata``;
- each served file (``file.saved`` with a ``url``) as a ``TOOL_CALL_RESULT`` of the call
  that made it: a document or image part by URL, never base64;
- every respflow event AG-UI has no form for (citations, bare links, the shell's live
  output, saved and failed files, gaps, other items) as ``CUSTOM`` named
  ``respflow.<type>``, whose value is the event's JSON;
- ``RUN_FINISHED`` with the usage, or ``RUN_ERROR`` for a failed or cut-off response,
  after every open message, tool call and reasoning span is closed: ``verifyEvents``
  accepts every run, and a client never waits for an end that will not come.

AG-UI itself has no resume; :meth:`AGUIEncoder.resume` gives it one. A reader that comes
back mid-run gets ``RUN_STARTED``, a ``MESSAGES_SNAPSHOT`` of every message as it stands,
the messages, tool calls and reasoning still open re-opened, then exactly the events after
its cursor. The snapshot is authoritative in AG-UI's reducer and a re-opened item keeps the
content the snapshot gave it, so a client that kept what it had and one that lost
everything end with the same messages as a client that never left.
"""

from __future__ import annotations

import mimetypes
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .. import _events as ev
from . import _steps as st

__all__ = ["AGUIEncoder"]

Json = dict[str, Any]

PROTOCOL_VERSION = "1.0"
_ENDS = {"RUN_FINISHED", "RUN_ERROR"}
_ENDED_KEPT = 16
_STOPPED = (
    "the events stopped before the response ended; reconnect with the last event id to follow it"
)


class AGUIEncoder:
    """respflow events in, AG-UI 1.0 events out; the mapping is in its module's docstring,
    ``help(respflow._protocols.agui)``.

    Args:
        thread_id: the ``threadId`` of every run; the response id when not given.
        inline_images: put code images the API sent as data URLs into tool results. A
            server that saves files turns it off: each image then arrives as a served
            file's URL (``file.saved``) and no base64 reaches the client.
    """

    def __init__(self, *, thread_id: str | None = None, inline_images: bool = True) -> None:
        self.thread_id = thread_id
        self.inline_images = inline_images
        self._ids = st.Ids()
        self._runs: dict[str, _Run] = {}
        self._ended: OrderedDict[str, _Run] = OrderedDict()
        self._held: list[ev.Event] = []

    def feed(self, event: ev.Event) -> list[Json]:
        """The AG-UI events for one respflow event, in order (often none or one)."""
        if not event.response_id:
            # Before the response's id is known (a gap or an error first): it goes into
            # the next run, right after it starts; nothing may precede RUN_STARTED.
            self._held.append(event)
            return []
        run = self._runs.get(event.response_id) or self._ended.get(event.response_id)
        if run is None:
            run = self._runs[event.response_id] = self._new_run(event.response_id)
        held, self._held = self._held, []
        out: list[Json] = []
        for step in run.translator.feed(event, held):
            run.render(step, out)
        if run.translator.ended and event.response_id in self._runs:
            # A finished run is kept a little while, for a reader resuming at its end.
            self._ended[event.response_id] = self._runs.pop(event.response_id)
            while len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
        return out

    def _new_run(self, response_id: str) -> _Run:
        translator = st.Translator(response_id, self._ids, inline_images=self.inline_images)
        return _Run(self.thread_id or response_id or "respflow", response_id, translator, self._ids)

    def resume(self, response_id: str) -> list[Json]:
        """The prelude for a reader resuming now: ``RUN_STARTED``, a ``MESSAGES_SNAPSHOT``
        of the run so far and the open items re-opened (and the run's end, if it has
        ended). Send it, then the events of whatever is fed next. Empty if the run has
        not started: the next events start it."""
        run = self._runs.get(response_id) or self._ended.get(response_id)
        return run.prelude() if run is not None else []

    def close(self, reason: str | None = None) -> list[Json]:
        """A ``RUN_ERROR`` for every run still open: the events stopped before its end
        (``reason`` says why, if known)."""
        message = reason or _STOPPED
        out: list[Json] = []
        if self._held:  # no response ever came for them: a run of their own
            orphans = self._runs[""] = self._new_run("")
            for step in orphans.translator.feed(self._held[-1], self._held[:-1]):
                orphans.render(step, out)
            self._held = []
        for run in self._runs.values():
            run.emit(out, {"type": "RUN_ERROR", "code": "stream_ended", "message": message})
        return out


@dataclass(slots=True)
class _Message:
    """A message as AG-UI's reducer builds it from the events sent."""

    id: str
    role: str
    pieces: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, list[str]]] | None = None
    """An assistant message made for tool calls: (id, name, argument pieces) each."""
    body: Json | None = None
    """A tool message, as it was sent."""

    def snapshot(self) -> Json:
        if self.body is not None:
            return self.body
        if self.calls is not None:
            calls = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(args)},
                }
                for cid, name, args in self.calls
            ]
            return {"id": self.id, "role": self.role, "toolCalls": calls}
        return {"id": self.id, "role": self.role, "content": "".join(self.pieces)}


class _Run:
    """One response as an AG-UI run: what was sent, and the messages it built."""

    def __init__(self, thread_id: str, run_id: str, translator: st.Translator, ids: st.Ids) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.translator = translator
        self._ids = ids
        self._open_parts: dict[str, int] = {}
        self._started: Json | None = None
        self._end: Json | None = None
        self._messages: list[_Message] = []
        self._by_id: dict[str, _Message] = {}
        self._call_owner: dict[str, list[str]] = {}
        self._open: dict[str, Json] = {}
        """Each open message, span and call, by kind and id: the event that opened it."""

    # -- sending -------------------------------------------------------------------------

    def emit(self, out: list[Json], event: Json) -> None:
        if self._end is not None:
            return  # nothing follows a run's end in AG-UI
        out.append(event)
        self._apply(event)

    def render(self, step: st.Step, out: list[Json]) -> None:
        match step:
            case st.RunStarted():
                self.emit(out, self._run_started())
            case st.TextStarted(message_id=mid):
                # The parts of one message share its id: it opens once, however many parts.
                self._open_parts[mid] = self._open_parts.get(mid, 0) + 1
                if self._open_parts[mid] == 1:
                    start = {"type": "TEXT_MESSAGE_START", "messageId": mid, "role": "assistant"}
                    self.emit(out, start)
            case st.TextDelta(message_id=mid, delta=delta):
                self.emit(out, {"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": delta})
            case st.TextEnded(message_id=mid):
                self._open_parts[mid] -= 1
                if self._open_parts[mid] == 0:
                    self.emit(out, {"type": "TEXT_MESSAGE_END", "messageId": mid})
            case st.SpanStarted(span_id=span):
                self.emit(out, {"type": "REASONING_START", "messageId": span})
            case st.ReasoningStarted(part_id=pid):
                start = {"type": "REASONING_MESSAGE_START", "messageId": pid, "role": "reasoning"}
                self.emit(out, start)
            case st.ReasoningDelta(part_id=pid, delta=delta):
                self.emit(
                    out, {"type": "REASONING_MESSAGE_CONTENT", "messageId": pid, "delta": delta}
                )
            case st.ReasoningEnded(part_id=pid):
                self.emit(out, {"type": "REASONING_MESSAGE_END", "messageId": pid})
            case st.SpanEnded(span_id=span):
                self.emit(out, {"type": "REASONING_END", "messageId": span})
            case st.ToolStarted(call_id=cid, tool=tool):
                self.emit(out, {"type": "TOOL_CALL_START", "toolCallId": cid, "toolCallName": tool})
            case st.ToolArgs(call_id=cid, delta=delta):
                self.emit(out, {"type": "TOOL_CALL_ARGS", "toolCallId": cid, "delta": delta})
            case st.ToolInput(call_id=cid):
                self.emit(out, {"type": "TOOL_CALL_END", "toolCallId": cid})
            case st.ToolResult():
                self.emit(out, self._tool_result(step))
            case st.FileServed(call_id=cid) if cid is not None:
                self.emit(out, self._file_result(step, cid))
                self.emit(out, _custom(step.event, None))
            case st.FileServed(event=event) | st.Cited(event=event):
                self.emit(out, _custom(event, None))
            case st.Extra(event=event, call_id=cid):
                self.emit(out, _custom(event, cid))
            case st.LinkCited(annotation=annotation):
                self.emit(
                    out, {"type": "CUSTOM", "name": "respflow.url_citation", "value": annotation}
                )
            case st.Ended():
                self.emit(out, self._ended(step))

    def prelude(self) -> list[Json]:
        if self._started is None:
            return []
        snapshot = [message.snapshot() for message in self._messages]
        events = [self._started, {"type": "MESSAGES_SNAPSHOT", "messages": snapshot}]
        events += self._open.values()
        if self._end is not None:
            events.append(self._end)
        return events

    # -- events --------------------------------------------------------------------------

    def _run_started(self) -> Json:
        return {
            "type": "RUN_STARTED",
            "threadId": self.thread_id,
            "runId": self.run_id,
            "protocolVersion": PROTOCOL_VERSION,
        }

    def _tool_result(self, step: st.ToolResult) -> Json:
        parts = _shell_parts(step.outputs) if step.tool == "shell" else _code_parts(step.outputs)
        return {
            "type": "TOOL_CALL_RESULT",
            "messageId": self._ids.claim(f"{step.call_id}:result"),
            "toolCallId": step.call_id,
            "role": "tool",
            "content": parts,
            # AG-UI's reducer keeps an event's metadata on the tool message it makes.
            "metadata": {"status": step.status},
        }

    def _file_result(self, step: st.FileServed, call_id: str) -> Json:
        saved = step.event
        media_type = saved.media_type or mimetypes.guess_type(saved.filename)[0]
        kind = "image" if (media_type or "").startswith("image/") else "document"
        source: Json = {"type": "url", "value": step.url}
        if media_type:
            source["mimeType"] = media_type
        return {
            "type": "TOOL_CALL_RESULT",
            "messageId": self._ids.claim(f"{call_id}:file"),
            "toolCallId": call_id,
            "role": "tool",
            "content": [{"type": kind, "source": source, "metadata": {"filename": saved.filename}}],
        }

    def _ended(self, step: st.Ended) -> Json:
        end = step.event
        if isinstance(end, ev.ResponseCompleted | ev.ResponseIncomplete):
            finished: Json = {
                "type": "RUN_FINISHED",
                "threadId": self.thread_id,
                "runId": self.run_id,
                "outcome": {"type": "success"},
            }
            counts = st.usage_counts(end.usage)
            if counts:
                model = {"model": step.model} if step.model else {}
                finished["usage"] = [{"provider": "openai", **model, **counts}]
            if isinstance(end, ev.ResponseIncomplete):
                details = end.incomplete_details
                finished["metadata"] = {
                    "status": "incomplete",
                    "incompleteDetails": details if isinstance(details, dict) else {},
                }
            return finished
        if step.error is not None:
            code, message = step.error
        elif isinstance(end, ev.StreamTruncated):
            code = "stream_truncated"
            message = end.message or "the stream ended before the response did"
        else:
            code, message = "response_failed", "the response failed"
        return {"type": "RUN_ERROR", "code": code, "message": message}

    # -- the messages the client has built (for the snapshot) ----------------------------

    def _apply(self, event: Json) -> None:
        """Keep the messages as AG-UI's reducer (``defaultApplyEvents``) builds them from
        what was sent, and which items are open."""
        kind = event["type"]
        if kind == "RUN_STARTED":
            self._started = event
        elif kind in _ENDS:
            self._end = event
        elif kind in {"TEXT_MESSAGE_START", "REASONING_MESSAGE_START"}:
            mid = event["messageId"]
            if mid not in self._by_id:
                self._add(_Message(mid, event["role"]))
            self._open[f"message:{mid}"] = event
        elif kind in {"TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT"}:
            self._by_id[event["messageId"]].pieces.append(event["delta"])
        elif kind in {"TEXT_MESSAGE_END", "REASONING_MESSAGE_END"}:
            self._open.pop(f"message:{event['messageId']}", None)
        elif kind == "REASONING_START":
            self._open[f"span:{event['messageId']}"] = event
        elif kind == "REASONING_END":
            self._open.pop(f"span:{event['messageId']}", None)
        elif kind == "TOOL_CALL_START":
            cid = event["toolCallId"]
            if cid not in self._call_owner:
                # Without a parent message the reducer makes one named after the call.
                args: list[str] = []
                self._call_owner[cid] = args
                self._add(_Message(cid, "assistant", calls=[(cid, event["toolCallName"], args)]))
            self._open[f"call:{cid}"] = event
        elif kind == "TOOL_CALL_ARGS":
            self._call_owner[event["toolCallId"]].append(event["delta"])
        elif kind == "TOOL_CALL_END":
            self._open.pop(f"call:{event['toolCallId']}", None)
        elif kind == "TOOL_CALL_RESULT":
            self._add_result(event)

    def _add(self, message: _Message) -> None:
        self._messages.append(message)
        self._by_id[message.id] = message

    def _add_result(self, event: Json) -> None:
        body = {key: value for key, value in event.items() if key not in {"type", "messageId"}}
        message = _Message(event["messageId"], "tool", body={"id": event["messageId"], **body})
        # The reducer puts a result right after its call's message and the results before it.
        at = next(
            (i + 1 for i, m in enumerate(self._messages) if m.id == event["toolCallId"]),
            len(self._messages),
        )
        while at < len(self._messages) and self._messages[at].role == "tool":
            at += 1
        self._messages.insert(at, message)
        self._by_id[message.id] = message


def _custom(event: ev.Event, call_id: str | None) -> Json:
    value = st.event_json(event)
    if call_id is not None:
        value["toolCallId"] = call_id
    return {"type": "CUSTOM", "name": f"respflow.{event.type}", "value": value}


def _code_parts(outputs: list[Json] | None) -> list[Json]:
    """A code interpreter call's outputs as content parts: logs as text, images by URL."""
    parts: list[Json] = []
    for output in outputs or []:
        if not isinstance(output, dict):
            continue
        if output.get("type") == "logs" and isinstance(output.get("logs"), str):
            parts.append({"type": "text", "text": output["logs"]})
        elif output.get("type") == "image" and isinstance(output.get("url"), str):
            parts.append({"type": "image", "source": _image_source(output["url"])})
    return parts


def _shell_parts(outputs: list[Json] | None) -> list[Json]:
    """A shell call's per-command results as text parts, standard output then errors."""
    parts: list[Json] = []
    for output in outputs or []:
        if not isinstance(output, dict):
            continue
        for stream in ("stdout", "stderr"):
            text = output.get(stream)
            if isinstance(text, str) and text:
                parts.append({"type": "text", "text": text, "metadata": {"stream": stream}})
    return parts


def _image_source(url: str) -> Json:
    """A URL source, or the data source AG-UI has for a data URL (the API's own)."""
    header, comma, payload = url.partition(",")
    if url.startswith("data:") and comma and header.endswith(";base64"):
        media_type = header[5:].split(";", 1)[0] or "application/octet-stream"
        return {"type": "data", "value": payload, "mimeType": media_type}
    return {"type": "url", "value": url}
