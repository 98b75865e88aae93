"""respflow events as Vercel AI UI message stream chunks (what ``useChat`` reads).

:class:`VercelEncoder` is sans-I/O: ``feed(event)`` returns the chunks (JSON-ready dicts)
for one respflow event. Each response is one assistant message (``messageId`` is the
response id, so a replay replaces the message instead of adding a second one):

- ``start`` with ``messageMetadata`` ``{responseId, model}``; the answer as
  ``text-start`` / ``text-delta`` / ``text-end`` (a part per content part); reasoning as
  ``reasoning-*``;
- each code interpreter or shell call as a tool the provider executed
  (``providerExecuted: true``) named ``code_interpreter`` or ``shell``: its code streams
  as ``tool-input-delta`` of the JSON input ``{"containerId", "code"}``, then
  ``tool-input-available``, then ``tool-output-available`` with
  ``{"status", "outputs"}`` (the API's outputs: logs and images, or a shell command's
  stdout, stderr and outcome);
- each served file (``file.saved`` with a ``url``) as a ``file`` part with that URL and
  its real media type, never base64; each file citation as a ``source-document`` (the
  container file's name and media type), each web citation as a ``source-url``; respflow's
  details in ``providerMetadata.respflow``;
- every respflow event the stream has no chunk for as ``data-respflow-<type>`` (dots
  become dashes): the shell's live output (``data-respflow-code-output``), gaps and
  progress are ``transient`` (for ``onData``, not kept in the message); bare links,
  failed downloads, missing outputs, other items and non-fatal errors are kept;
- ``finish`` with the finish reason and the usage in ``messageMetadata``; a failed
  response or a fatal error ends with ``error`` (``useChat`` shows it) then ``finish``;
  a cut-off stream with ``abort`` (the partial message stays). Whatever is open is
  closed first, so ``readUIMessageStream`` accepts every stream.

Resuming is the AI SDK's own way: ``useChat``'s ``resumeStream`` replays the response
from its ``start`` (send the events from the first), and a reader that kept its state
continues with exactly the chunks after the last one it got (see :mod:`.stream`).
"""

from __future__ import annotations

import mimetypes
from collections import OrderedDict
from typing import Any

from .. import _events as ev
from . import _steps as st

__all__ = ["VercelEncoder"]

Json = dict[str, Any]

_FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content-filter"}
_ENDED_KEPT = 1024
_STOPPED = "the events stopped before the response ended; resume the stream to follow it"


class VercelEncoder:
    """respflow events in, UI message stream chunks out; the mapping is in its module's
    docstring, ``help(respflow._protocols.vercel)``.

    Args:
        inline_images: keep code images the API sent as data URLs in tool outputs. A
            server that saves files turns it off: each image then arrives as a ``file``
            part with its served URL and no base64 reaches the client.
    """

    def __init__(self, *, inline_images: bool = True) -> None:
        self.inline_images = inline_images
        self._ids = st.Ids()
        self._translators: dict[str, st.Translator] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._held: list[ev.Event] = []

    def feed(self, event: ev.Event) -> list[Json]:
        """The chunks for one respflow event, in order (often none or one)."""
        if event.response_id in self._ended:
            return []  # the end is last
        if not event.response_id:
            # Before the response's id is known (a gap or an error first): it goes into
            # the next message, right after its start.
            self._held.append(event)
            return []
        translator = self._translators.get(event.response_id)
        if translator is None:
            translator = self._translators[event.response_id] = st.Translator(
                event.response_id, self._ids, inline_images=self.inline_images
            )
        held, self._held = self._held, []
        out: list[Json] = []
        for step in translator.feed(event, held):
            _render(step, event.response_id, out)
        if translator.ended:
            del self._translators[event.response_id]
            self._ended[event.response_id] = None
            while len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
        return out

    def close(self, reason: str | None = None) -> list[Json]:
        """An ``error`` for every message still open: the events stopped before its end
        (``reason`` says why, if known)."""
        out: list[Json] = []
        if self._held:  # no response ever came for them: a message of their own
            orphans = self._translators[""] = st.Translator("", self._ids)
            for step in orphans.feed(self._held[-1], self._held[:-1]):
                _render(step, "", out)
            self._held = []
        for response_id in list(self._translators):
            del self._translators[response_id]
            self._ended[response_id] = None
            out.append({"type": "error", "errorText": reason or _STOPPED})
        return out


def _render(step: st.Step, response_id: str, out: list[Json]) -> None:
    match step:
        case st.RunStarted(model=model):
            metadata: Json = {"responseId": response_id}
            if model:
                metadata["model"] = model
            out.append({"type": "start", "messageId": response_id, "messageMetadata": metadata})
        case st.TextStarted(part_id=pid):
            out.append({"type": "text-start", "id": pid})
        case st.TextDelta(part_id=pid, delta=delta):
            out.append({"type": "text-delta", "id": pid, "delta": delta})
        case st.TextEnded(part_id=pid):
            out.append({"type": "text-end", "id": pid})
        case st.SpanStarted() | st.SpanEnded():
            pass  # a reasoning item is only its parts here
        case st.ReasoningStarted(part_id=pid):
            out.append({"type": "reasoning-start", "id": pid})
        case st.ReasoningDelta(part_id=pid, delta=delta):
            out.append({"type": "reasoning-delta", "id": pid, "delta": delta})
        case st.ReasoningEnded(part_id=pid):
            out.append({"type": "reasoning-end", "id": pid})
        case st.ToolStarted(call_id=cid, tool=tool):
            out.append(
                {
                    "type": "tool-input-start",
                    "toolCallId": cid,
                    "toolName": tool,
                    "providerExecuted": True,
                }
            )
        case st.ToolArgs(call_id=cid, delta=delta):
            out.append({"type": "tool-input-delta", "toolCallId": cid, "inputTextDelta": delta})
        case st.ToolInput(call_id=cid, tool=tool, input=given):
            out.append(
                {
                    "type": "tool-input-available",
                    "toolCallId": cid,
                    "toolName": tool,
                    "input": given,
                    "providerExecuted": True,
                }
            )
        case st.ToolResult(call_id=cid, status=status, outputs=outputs):
            out.append(
                {
                    "type": "tool-output-available",
                    "toolCallId": cid,
                    "output": {"status": status, "outputs": outputs},
                    "providerExecuted": True,
                }
            )
        case st.FileServed(event=saved, url=url, call_id=cid):
            out.append(_file(saved, url, cid))
        case st.Cited(event=cited):
            out.append(_source_document(cited))
        case st.LinkCited(annotation=annotation):
            out.append(_source_url(annotation))
        case st.Extra(event=event, transient=transient, call_id=cid):
            data = st.event_json(event)
            if cid is not None:
                data["toolCallId"] = cid
            chunk: Json = {"type": _data_type(event), "id": event.cursor, "data": data}
            if transient:
                chunk["transient"] = True
            out.append(chunk)
        case st.Ended():
            out.extend(_ended(step))


def _data_type(event: ev.Event) -> str:
    return "data-respflow-" + event.type.replace(".", "-").replace("_", "-")


def _media_type(filename: str | None, given: str | None = None) -> str:
    return given or mimetypes.guess_type(filename or "")[0] or "application/octet-stream"


def _file(saved: ev.FileSaved, url: str, call_id: str | None) -> Json:
    details: Json = {
        "filename": saved.filename,
        "containerId": saved.container_id,
        "fileId": saved.file_id,
        "size": saved.size,
        "sha256": saved.sha256,
        "resolvedBy": saved.resolved_by,
        "path": saved.path,
        "toolCallId": call_id,
    }
    return {
        "type": "file",
        "url": url,
        "mediaType": _media_type(saved.filename, saved.media_type),
        "providerMetadata": {"respflow": details},
    }


def _source_document(cited: ev.FileCited) -> Json:
    name = cited.filename or cited.file_id
    details: Json = {
        "kind": cited.kind,
        "fileId": cited.file_id,
        "containerId": cited.container_id,
        "messageId": cited.item_id,
        "startIndex": cited.start_index,
        "endIndex": cited.end_index,
    }
    chunk: Json = {
        "type": "source-document",
        "sourceId": f"{cited.container_id or ''}/{cited.file_id}",
        "mediaType": _media_type(cited.filename),
        "title": name,
        "providerMetadata": {"respflow": details},
    }
    if cited.filename:
        chunk["filename"] = cited.filename
    return chunk


def _source_url(annotation: Json) -> Json:
    chunk: Json = {"type": "source-url", "sourceId": annotation["url"], "url": annotation["url"]}
    if isinstance(annotation.get("title"), str):
        chunk["title"] = annotation["title"]
    return chunk


def _ended(step: st.Ended) -> list[Json]:
    end = step.event
    metadata: Json = {"status": "truncated" if isinstance(end, ev.StreamTruncated) else ""}
    if isinstance(end, ev.ResponseCompleted | ev.ResponseIncomplete | ev.ResponseFailed):
        metadata["status"] = end.status
        counts = st.usage_counts(end.usage)
        if counts:
            metadata["usage"] = counts
    chunks: list[Json] = []
    if step.error is not None or isinstance(end, ev.ResponseFailed):
        _, message = step.error or ("", "the response failed")
        chunks.append({"type": "error", "errorText": message})
        chunks.append({"type": "finish", "finishReason": "error", "messageMetadata": metadata})
    elif isinstance(end, ev.StreamTruncated):
        chunks.append({"type": "message-metadata", "messageMetadata": metadata})
        chunks.append({"type": "abort", "reason": end.message or "the stream was cut off"})
    elif isinstance(end, ev.ResponseIncomplete):
        details = end.incomplete_details if isinstance(end.incomplete_details, dict) else {}
        reason = _FINISH_REASONS.get(str(details.get("reason")), "other")
        chunks.append({"type": "finish", "finishReason": reason, "messageMetadata": metadata})
    else:
        chunks.append({"type": "finish", "finishReason": "stop", "messageMetadata": metadata})
    return chunks
