"""OtelSink: each response's events as OpenTelemetry spans.

A response is a ``chat {model}`` span (unless the official OpenAI instrumentation makes
that one); each Code Interpreter or hosted shell call inside it an ``execute_tool`` span.
A call's span covers the call, from ``code.started`` to ``code.completed``, but is handed
to the SDK only when its response ends: the files the call made are saved after it
completed (``file.saved`` comes once the answer cites them), and they belong on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

import respflow
from respflow import (
    CodeCompleted,
    CodeLogs,
    CodeOutputsMissing,
    CodeStarted,
    FileFailed,
    FileSaved,
    ItemCompleted,
    MessageCompleted,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    StreamDropped,
    StreamError,
    StreamGap,
    StreamTruncated,
)

from . import _conventions as gen_ai

__all__ = ["OtelSink"]

SCOPE = "respflow_otel"
VERSION = "0.1.0"

# error.type values this sink sets besides the API's own error codes.
CALL_NOT_COMPLETED = "incomplete"
"""A call whose response ended before the call completed."""
STREAM_TRUNCATED = "truncated"
"""The stream ended with no terminal event (``stream.truncated``)."""
SINK_CLOSED = "sink_closed"
"""The sink was closed before the response ended."""

Ends = ResponseCompleted | ResponseIncomplete | ResponseFailed | StreamTruncated


@dataclass
class _Call:
    """One hosted call's span, and what it gathered."""

    span: Span
    container_id: str | None
    completed_at: int | None = None
    logs: list[str] = field(default_factory=list)


@dataclass
class _Response:
    """One response's spans, until its end."""

    parent: Context
    chat: Span | None
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reasons: list[str] = field(default_factory=list)
    fatal_code: str | None = None


class OtelSink:
    """A :class:`respflow.Sink` that records each response as OpenTelemetry spans,
    following the GenAI semantic conventions.

    Args:
        tracer_provider: where the spans go (default: the global one).
        capture_content: record each call's code (``gen_ai.tool.call.arguments``) and
            logs (``gen_ai.tool.call.result``). Off by default: both can hold anything the
            user or the model wrote.
        chat_span: make a ``chat {model}`` span per response, with its usage. ``None``
            (the default) makes one only while the official OpenAI instrumentation is not
            instrumenting the openai SDK, which makes its own: asked when each response
            starts.
        context: the context whose current span the spans hang under; by default the one
            current when the sink is made.
        provider_name: ``gen_ai.provider.name`` (``azure.ai.openai`` for Azure).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        capture_content: bool = False,
        chat_span: bool | None = None,
        context: Context | None = None,
        provider_name: str = "openai",
    ) -> None:
        self.capture_content = capture_content
        self.chat_span = chat_span
        self.provider_name = provider_name
        self._tracer = trace.get_tracer(SCOPE, VERSION, tracer_provider)
        # Sinks run in the pipeline's tasks: the caller's span is known here, not there.
        self._parent = context if context is not None else otel_context.get_current()
        self._responses: dict[str, _Response] = {}

    async def send(self, event: respflow.Event) -> None:
        if not event.response_id:
            return  # the pipeline's news from before any response: no response to trace
        response = self._response(event)
        match event:
            case CodeStarted():
                self._start_call(response, event)
            case CodeLogs(logs=logs):
                call = response.calls.get(event.output_index)
                if call is not None and self.capture_content:
                    call.logs.append(logs)
            case CodeOutputsMissing(reason=reason):
                call = response.calls.get(event.output_index)
                if call is not None:
                    missing = {"respflow.outputs_missing.reason": reason}
                    call.span.add_event("respflow.code.outputs_missing", missing)
            case CodeCompleted():
                self._complete_call(response, event)
            case MessageCompleted(status=status):
                response.finish_reasons.append(gen_ai.finish_reason(status))
            case ItemCompleted(item_type=item_type) if gen_ai.is_client_tool_call(item_type):
                response.finish_reasons.append("tool_calls")
            case FileSaved() | FileFailed():
                self._file_event(response, event)
            case StreamError(code=code, fatal=fatal):
                if fatal:
                    response.fatal_code = code
                # Only the code: an error's message can echo what the user asked.
                error = {"respflow.error.code": code, "respflow.error.fatal": fatal}
                self._note(response, "respflow.stream.error", error)
            case StreamGap(expected=expected, received=received):
                gap = {"respflow.gap.expected": expected, "respflow.gap.received": received}
                self._note(response, "respflow.stream.gap", gap)
            case StreamDropped(count=count):
                self._note(response, "respflow.stream.dropped", {"respflow.dropped.count": count})
            case ResponseCompleted() | ResponseIncomplete() | ResponseFailed() | StreamTruncated():
                self._end_response(event)

    async def aclose(self) -> None:
        """Ends the spans of every response that has not ended, as errors."""
        responses, self._responses = self._responses, {}
        for response in responses.values():
            why = "the sink was closed before the response ended"
            for call in response.calls.values():
                _end_call(call, SINK_CLOSED, why)
            if response.chat is not None:
                _fail(response.chat, SINK_CLOSED, why)
                response.chat.end()

    # -- responses -----------------------------------------------------------------------

    def _response(self, event: respflow.Event) -> _Response:
        """The response ``event`` belongs to; its first event starts its spans."""
        response = self._responses.get(event.response_id)
        if response is None:
            response = self._responses[event.response_id] = self._start_response(event)
        return response

    def _start_response(self, event: respflow.Event) -> _Response:
        wanted = self.chat_span
        if wanted is None:
            wanted = not gen_ai.official_instrumentation_active()
        if not wanted:
            return _Response(parent=self._parent, chat=None)
        # A stream taken up mid-way (respflow.resume) starts without response.started.
        model = event.model if isinstance(event, ResponseStarted) else None
        attributes: dict[str, Any] = {
            gen_ai.OPERATION: "chat",
            gen_ai.PROVIDER: self.provider_name,
            gen_ai.RESPONSE_ID: event.response_id,
        }
        if model:
            attributes[gen_ai.RESPONSE_MODEL] = model
        chat = self._tracer.start_span(
            f"chat {model}" if model else "chat",
            context=self._parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return _Response(parent=trace.set_span_in_context(chat, self._parent), chat=chat)

    def _end_response(self, end: Ends) -> None:
        response = self._responses.pop(end.response_id)
        if isinstance(end, StreamTruncated):
            left_open = STREAM_TRUNCATED
            why = "the stream ended before the response did"
        else:
            left_open = CALL_NOT_COMPLETED
            why = f"the response ended ({end.status}) before the call completed"
        for call in response.calls.values():
            _end_call(call, left_open, why)
        chat = response.chat
        if chat is None:
            return
        if isinstance(end, StreamTruncated):
            _fail(chat, response.fatal_code or STREAM_TRUNCATED, end.message or why)
        else:
            self._record_outcome(chat, response, end)
        chat.end()

    def _record_outcome(
        self,
        chat: Span,
        response: _Response,
        end: ResponseCompleted | ResponseIncomplete | ResponseFailed,
    ) -> None:
        for name, count in gen_ai.usage_attributes(end.usage).items():
            chat.set_attribute(name, count)
        if isinstance(end, ResponseCompleted):
            reasons = response.finish_reasons or ["stop"]
        else:
            reasons = [gen_ai.finish_reason(end.status, end.incomplete_details)]
        chat.set_attribute(gen_ai.FINISH_REASONS, list(dict.fromkeys(reasons)))
        if isinstance(end, ResponseFailed):
            code = (end.error or {}).get("code")
            _fail(chat, str(code) if code else end.status, "the response failed")

    def _note(self, response: _Response, name: str, attributes: dict[str, Any]) -> None:
        """An event about the stream itself: the response's span has it, if there is one."""
        if response.chat is not None:
            response.chat.add_event(name, attributes)

    # -- calls ---------------------------------------------------------------------------

    def _start_call(self, response: _Response, event: CodeStarted) -> None:
        if event.output_index in response.calls:
            return
        attributes: dict[str, Any] = {
            gen_ai.OPERATION: "execute_tool",
            gen_ai.TOOL_NAME: event.tool,
            gen_ai.TOOL_CALL_ID: event.item_id,
            gen_ai.TOOL_TYPE: gen_ai.HOSTED_TOOL_TYPE,
        }
        if event.container_id:
            attributes[gen_ai.CONTAINER_ID] = event.container_id
        span = self._tracer.start_span(
            f"execute_tool {event.tool}",
            context=response.parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        response.calls[event.output_index] = _Call(span, event.container_id)

    def _complete_call(self, response: _Response, event: CodeCompleted) -> None:
        call = response.calls.get(event.output_index)
        if call is None:  # its start was never seen: a stream taken up mid-call
            self._start_call(response, _started_from(event))
            call = response.calls[event.output_index]
        if call.completed_at is not None:
            return
        call.completed_at = time.time_ns()
        if event.container_id and call.container_id is None:
            call.container_id = event.container_id
            call.span.set_attribute(gen_ai.CONTAINER_ID, event.container_id)
        if self.capture_content:
            call.span.set_attribute(gen_ai.TOOL_ARGUMENTS, json.dumps({"code": event.code}))
            if call.logs:
                call.span.set_attribute(
                    gen_ai.TOOL_RESULT, json.dumps({"logs": "".join(call.logs)})
                )
        if event.status != "completed":
            _fail(call.span, event.status, f"the call ended with status {event.status}")

    # -- files ---------------------------------------------------------------------------

    def _file_event(self, response: _Response, event: FileSaved | FileFailed) -> None:
        span = self._span_for_file(response, event.container_id)
        if span is None:
            return
        if isinstance(event, FileSaved):
            span.add_event("respflow.file.saved", _saved_attributes(event))
        else:
            span.add_event("respflow.file.failed", _failed_attributes(event))

    def _span_for_file(self, response: _Response, container_id: str | None) -> Span | None:
        """The latest call that ran in the file's container (its files are what that
        container held when it finished); else the response's span; else its latest call."""
        calls = list(response.calls.values())
        for call in reversed(calls):
            if container_id is not None and call.container_id == container_id:
                return call.span
        if response.chat is not None:
            return response.chat
        return calls[-1].span if calls else None


def _fail(span: Span, error_type: str, description: str) -> None:
    span.set_attribute(gen_ai.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description))


def _end_call(call: _Call, error_type: str, why: str) -> None:
    """Hands a call's span to the SDK, ending when the call completed (if it did)."""
    if call.completed_at is None:
        _fail(call.span, error_type, why)
    call.span.end(end_time=call.completed_at)


def _started_from(event: CodeCompleted) -> CodeStarted:
    return CodeStarted(
        response_id=event.response_id,
        sequence_number=event.sequence_number,
        cursor=event.cursor,
        item_id=event.item_id,
        output_index=event.output_index,
        container_id=event.container_id,
        tool=event.tool,
    )


def _saved_attributes(event: FileSaved) -> dict[str, Any]:
    return _present(
        {
            gen_ai.CONTAINER_ID: event.container_id,
            "respflow.file.id": event.file_id,
            "respflow.file.name": event.filename,
            "respflow.file.path": event.path,
            "respflow.file.location": event.location,
            "respflow.file.size": event.size,
            "respflow.file.sha256": event.sha256,
            "respflow.file.media_type": event.media_type,
            "respflow.file.resolved_by": event.resolved_by,
        }
    )


def _failed_attributes(event: FileFailed) -> dict[str, Any]:
    return _present(
        {
            gen_ai.CONTAINER_ID: event.container_id,
            "respflow.file.id": event.file_id,
            "respflow.file.path": event.path,
            "respflow.file.status": event.status,
            "respflow.file.reason": event.reason,
        }
    )


def _present(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes cannot be None: what is not known is left out."""
    return {name: value for name, value in attributes.items() if value is not None}
