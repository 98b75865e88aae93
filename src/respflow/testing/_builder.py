"""Building realistic Responses API streams without calling the API.

:class:`StreamBuilder` writes the wire events of one response in the order and shape the
API uses (checked against real recordings): lifecycle events, a code interpreter call
whose code streams in small deltas, a message whose text streams and whose annotations
arrive after the last delta, and a ``response.completed`` that repeats every item. The
project's sample recording, its tests and its benchmark are all made with it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

__all__ = ["StreamBuilder", "to_jsonl", "to_sse"]

Json = dict[str, Any]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class StreamBuilder:
    """Accumulates output items, then renders the whole stream with :meth:`events`.

    Args:
        response_id: the response's id.
        model: the model name reported.
        background: mark the response as a background one.
        include_outputs: whether the request asked for
            ``include=["code_interpreter_call.outputs"]``; without it ``outputs`` is null.
        obfuscation: add an ``obfuscation`` padding field to deltas, as the API does.
    """

    def __init__(
        self,
        *,
        response_id: str = "resp_sample",
        model: str = "gpt-5",
        created_at: int = 1_763_000_000,
        background: bool = False,
        include_outputs: bool = True,
        obfuscation: bool = True,
    ) -> None:
        self.response_id = response_id
        self.model = model
        self.created_at = created_at
        self.background = background
        self.include_outputs = include_outputs
        self.obfuscation = obfuscation
        self._plan: list[tuple[Json, list[Json]]] = []

    # -- items ------------------------------------------------------------------------

    def reasoning(self, summary: str = "", *, item_id: str | None = None) -> StreamBuilder:
        index = len(self._plan)
        item_id = item_id or f"rs_{index:04d}"
        final: Json = {"id": item_id, "type": "reasoning", "summary": []}
        middle: list[Json] = []
        if summary:
            final["summary"] = [{"type": "summary_text", "text": summary}]
            middle += [
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "summary_index": 0,
                    "delta": piece,
                }
                for piece in _chunks(summary, 12)
            ]
            middle.append(
                {
                    "type": "response.reasoning_summary_text.done",
                    "item_id": item_id,
                    "output_index": index,
                    "summary_index": 0,
                    "text": summary,
                }
            )
        self._plan.append((final, middle))
        return self

    def code_call(
        self,
        code: str,
        *,
        logs: str | None = None,
        images: Sequence[str] = (),
        container_id: str = "cntr_sample",
        item_id: str | None = None,
        chunk: int = 6,
    ) -> StreamBuilder:
        """A code interpreter call; ``images`` are image URLs (usually data URLs)."""
        index = len(self._plan)
        item_id = item_id or f"ci_{index:04d}"
        outputs: list[Json] | None = None
        if self.include_outputs:
            outputs = [{"type": "image", "url": url} for url in images]
            if logs is not None:
                outputs.append({"type": "logs", "logs": logs})
        final: Json = {
            "id": item_id,
            "type": "code_interpreter_call",
            "status": "completed",
            "code": code,
            "container_id": container_id,
            "outputs": outputs,
        }
        ref = {"item_id": item_id, "output_index": index}
        middle: list[Json] = [{"type": "response.code_interpreter_call.in_progress", **ref}]
        middle += [
            {"type": "response.code_interpreter_call_code.delta", **ref, "delta": piece}
            for piece in _chunks(code, chunk)
        ]
        middle += [
            {"type": "response.code_interpreter_call_code.done", **ref, "code": code},
            {"type": "response.code_interpreter_call.interpreting", **ref},
            {"type": "response.code_interpreter_call.completed", **ref},
        ]
        self._plan.append((final, middle))
        return self

    def shell_call(
        self,
        commands: Sequence[str],
        *,
        outputs: Sequence[tuple[str, str, int]] | None = (),
        container_id: str | None = "cntr_sample",
        item_id: str | None = None,
        chunk: int = 6,
    ) -> StreamBuilder:
        """A hosted shell call: its commands stream, then (unless ``outputs`` is None,
        as for a ``local`` shell the user runs) a ``shell_call_output`` item streams each
        command's ``(stdout, stderr, exit_code)``."""
        index = len(self._plan)
        item_id = item_id or f"sh_{index:04d}"
        call_id = f"call_{item_id}"
        environment: Json = (
            {"type": "container_reference", "container_id": container_id}
            if container_id
            else {"type": "local"}
        )
        final: Json = {
            "id": item_id,
            "type": "shell_call",
            "status": "completed",
            "call_id": call_id,
            "action": {"commands": list(commands), "max_output_length": None, "timeout_ms": None},
            "environment": environment,
        }
        ref = {"output_index": index}
        middle: list[Json] = []
        for n, command in enumerate(commands):
            middle.append(
                {
                    "type": "response.shell_call_command.added",
                    **ref,
                    "command_index": n,
                    "command": "",
                }
            )
            middle += [
                {
                    "type": "response.shell_call_command.delta",
                    **ref,
                    "command_index": n,
                    "delta": piece,
                }
                for piece in _chunks(command, chunk)
            ]
            middle.append(
                {
                    "type": "response.shell_call_command.done",
                    **ref,
                    "command_index": n,
                    "command": command,
                }
            )
        self._plan.append((final, middle))
        if outputs is None:
            return self
        index += 1
        results = [
            {"stdout": out, "stderr": err, "outcome": {"type": "exit", "exit_code": code}}
            for out, err, code in outputs
        ]
        output_id = f"sho_{index:04d}"
        result: Json = {
            "id": output_id,
            "type": "shell_call_output",
            "status": "completed",
            "call_id": call_id,
            "max_output_length": None,
            "output": results,
        }
        at: Json = {"item_id": output_id, "output_index": index}
        streamed: list[Json] = []
        for n, one in enumerate(results):
            delta = {k: one[k] for k in ("stdout", "stderr") if one[k]}
            if delta:
                streamed.append(
                    {
                        "type": "response.shell_call_output_content.delta",
                        **at,
                        "command_index": n,
                        "delta": delta,
                    }
                )
            streamed.append(
                {
                    "type": "response.shell_call_output_content.done",
                    **at,
                    "command_index": n,
                    "output": [one],
                }
            )
        self._plan.append((result, streamed))
        return self

    def message(
        self,
        text: str,
        *,
        annotations: Iterable[Json] = (),
        item_id: str | None = None,
        chunk: int = 5,
    ) -> StreamBuilder:
        """An assistant message; annotations arrive after its last text delta, as observed."""
        index = len(self._plan)
        item_id = item_id or f"msg_{index:04d}"
        annotations = list(annotations)
        part = {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}
        final: Json = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        ref = {"item_id": item_id, "output_index": index, "content_index": 0}
        empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        middle: list[Json] = [{"type": "response.content_part.added", **ref, "part": empty_part}]
        middle += [
            {"type": "response.output_text.delta", **ref, "delta": piece, "logprobs": []}
            for piece in _chunks(text, chunk)
        ]
        middle += [
            {
                "type": "response.output_text.annotation.added",
                **ref,
                "annotation_index": i,
                "annotation": annotation,
            }
            for i, annotation in enumerate(annotations)
        ]
        middle += [
            {"type": "response.output_text.done", **ref, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **ref, "part": part},
        ]
        self._plan.append((final, middle))
        return self

    def item(self, item: Json) -> StreamBuilder:
        """Any other output item, added and done with nothing streamed between."""
        self._plan.append((item, []))
        return self

    # -- rendering ----------------------------------------------------------------------

    def response(self, *, status: str = "completed") -> Json:
        """The ``Response`` object as the API returns it at the end (or non-streaming)."""
        done = status == "completed"
        usage = {
            "input_tokens": 812,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 377,
            "output_tokens_details": {"reasoning_tokens": 128},
            "total_tokens": 1189,
        }
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": self.background,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "model": self.model,
            "output": [copy.deepcopy(final) for final, _ in self._plan],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
            "usage": usage if done else None,
        }

    def events(self, *, end: str | None = "completed") -> list[Json]:
        """Every wire event, numbered from 0.

        Args:
            end: ``completed``, ``incomplete`` or ``failed`` for that terminal event; None to
                stop after the last item, as a stream cut off would.
        """
        started = self.response(status="queued" if self.background else "in_progress")
        started["output"] = []
        lifecycle = ["response.created"]
        if self.background:
            lifecycle.append("response.queued")
            lifecycle.append("response.in_progress")
        else:
            lifecycle.append("response.in_progress")
        out: list[Json] = []
        for kind in lifecycle:
            status = "queued" if kind == "response.queued" else started["status"]
            out.append({"type": kind, "response": {**started, "status": status}})
        for index, (final, middle) in enumerate(self._plan):
            added = _as_added(final)
            out.append({"type": "response.output_item.added", "output_index": index, "item": added})
            out += copy.deepcopy(middle)
            out.append(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": copy.deepcopy(final),
                }
            )
        if end is not None:
            out.append({"type": f"response.{end}", "response": self.response(status=end)})
        for seq, event in enumerate(out):
            event["sequence_number"] = seq
            if self.obfuscation and event["type"].endswith(".delta"):
                event["obfuscation"] = "x" * (seq % 7 + 3)
        return out


def _as_added(final: Json) -> Json:
    """An item as ``output_item.added`` shows it: nothing produced yet."""
    added = copy.deepcopy(final)
    added["status"] = "in_progress"
    kind = added.get("type")
    if kind == "code_interpreter_call":
        added["code"] = ""
        added["outputs"] = [] if added["outputs"] is not None else None
    elif kind == "message":
        added["content"] = []
    elif kind == "reasoning":
        added["summary"] = []
        added.pop("status")
    elif kind == "shell_call":
        added["action"] = {**added["action"], "commands": []}
    elif kind == "shell_call_output":
        added["output"] = []
    return added


_encoder = msgspec.json.Encoder()


def to_sse(events: Iterable[Json]) -> bytes:
    """Events framed exactly as the API sends them: ``event:``, ``data:``, a blank line."""
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"
        for event in events
    )


def to_jsonl(events: Iterable[Json]) -> bytes:
    """Events as JSON Lines, one wire event a line, as some logs and SDK dumps keep them;
    ``respflow.replay`` and ``respflow replay`` read this form too."""
    return b"".join(_encoder.encode(event) + b"\n" for event in events)
