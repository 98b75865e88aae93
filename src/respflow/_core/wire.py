"""The Responses API's wire events, as far as respflow reads them.

Each event respflow acts on is a msgspec Struct tagged on ``type``; one decoder for the
whole union picks the class from the tag and skips every field not declared here
(``obfuscation``, ``logprobs``, most of the ``response`` object), which is where the speed
comes from. Every field has a default: real streams omit fields the SDK calls required
(``function_call_arguments.done`` has no ``name``), so absence must never fail a decode.

Types outside the union are either absorbed on purpose (:data:`ABSORBED_TYPES`: progress
signals whose outcome the finished item carries) or really unknown and passed on raw.

This module does without ``from __future__ import annotations``: msgspec reads the
Structs' annotations when the decoder is built, at import, and real types spare it
evaluating some five hundred strings on every start of a process.
"""

from collections.abc import Callable
from itertools import accumulate
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

__all__ = [
    "ABSORBED_TYPES",
    "MAX_DEPTH",
    "NestingTooDeep",
    "Payload",
    "WireEvent",
    "WireResponse",
    "decode_bounded",
    "decode_event",
    "decode_json",
    "decode_known",
    "decode_response",
    "kept_too_deep",
]

Json = dict[str, Any]
T = TypeVar("T")
Payload = bytes | bytearray | str
"""An event's JSON as it arrived (a large one in the buffer it was gathered in)."""
D = TypeVar("D", bound=Payload)
Index = Annotated[int, msgspec.Meta(ge=0)]
"""A position the stream names (an output item, a part, a command): never negative, so
Python's negative indexing can never pick another item. Nothing is ever sized by one."""

MAX_DEPTH = 128
"""How deeply a JSON document respflow reads may nest. The deepest real event seen nests
10 levels; a limit far below Python's recursion limit leaves room for whatever encodes,
copies or walks an event afterwards (a sink, a renderer, the user's code)."""


class NestingTooDeep(msgspec.DecodeError):
    """A JSON document nests deeper than :data:`MAX_DEPTH`; it was not read."""

    def __init__(self) -> None:
        super().__init__(f"the JSON nests more than {MAX_DEPTH} levels deep")


class WireResponse(msgspec.Struct, gc=False):
    """The ``response`` object of lifecycle events, or a non-streaming response body."""

    id: str = ""
    status: str | None = None
    model: str | None = None
    created_at: int | float | None = None
    background: bool | None = None
    error: Json | None = None
    incomplete_details: Json | None = None
    usage: Json | None = None
    output: list[Json] | None = None


class _Event(msgspec.Struct, tag_field="type", gc=False):
    sequence_number: int | None = None


class _Lifecycle(_Event):
    response: WireResponse = msgspec.field(default_factory=WireResponse)


class ResponseCreated(_Lifecycle, tag="response.created"):
    pass


class ResponseQueued(_Lifecycle, tag="response.queued"):
    pass


class ResponseInProgress(_Lifecycle, tag="response.in_progress"):
    pass


class ResponseCompleted(_Lifecycle, tag="response.completed"):
    pass


class ResponseIncomplete(_Lifecycle, tag="response.incomplete"):
    pass


class ResponseFailed(_Lifecycle, tag="response.failed"):
    pass


class _ItemEvent(_Event):
    output_index: Index | None = None
    item_id: str | None = None


class OutputItemAdded(_ItemEvent, tag="response.output_item.added"):
    item: Json = msgspec.field(default_factory=dict)


class OutputItemDone(_ItemEvent, tag="response.output_item.done"):
    item: Json = msgspec.field(default_factory=dict)


class CodeInProgress(_ItemEvent, tag="response.code_interpreter_call.in_progress"):
    pass


class CodeInterpreting(_ItemEvent, tag="response.code_interpreter_call.interpreting"):
    pass


class CodeCallCompleted(_ItemEvent, tag="response.code_interpreter_call.completed"):
    pass


class CodeDelta(_ItemEvent, tag="response.code_interpreter_call_code.delta"):
    delta: str = ""


class CodeDeltaDotted(CodeDelta, tag="response.code_interpreter_call.code.delta"):
    """The spelling used before mid-2025 and still in some Azure documents."""


class CodeDone(_ItemEvent, tag="response.code_interpreter_call_code.done"):
    code: str | None = None


class CodeDoneDotted(CodeDone, tag="response.code_interpreter_call.code.done"):
    pass


class ShellCommandAdded(_ItemEvent, tag="response.shell_call_command.added"):
    """Hosted shell: a command begins (these events carry no item_id: key by output_index)."""

    command_index: Index = 0
    command: str = ""


class ShellCommandDelta(_ItemEvent, tag="response.shell_call_command.delta"):
    command_index: Index = 0
    delta: str = ""


class ShellCommandDone(_ItemEvent, tag="response.shell_call_command.done"):
    command_index: Index = 0
    command: str | None = None


class ShellOutputDelta(_ItemEvent, tag="response.shell_call_output_content.delta"):
    """Hosted shell output as it is produced: ``delta`` has ``stdout`` and/or ``stderr``."""

    command_index: Index = 0
    delta: Any = None


class ShellOutputDone(_ItemEvent, tag="response.shell_call_output_content.done"):
    command_index: Index = 0
    output: Any = None


class _PartEvent(_ItemEvent):
    content_index: Index = 0


class ContentPartAdded(_PartEvent, tag="response.content_part.added"):
    part: Json = msgspec.field(default_factory=dict)


class ContentPartDone(_PartEvent, tag="response.content_part.done"):
    part: Json = msgspec.field(default_factory=dict)


class TextDelta(_PartEvent, tag="response.output_text.delta"):
    delta: str = ""


class TextDone(_PartEvent, tag="response.output_text.done"):
    text: str | None = None


class AnnotationAdded(_PartEvent, tag="response.output_text.annotation.added"):
    annotation_index: Index | None = None
    annotation: Json | None = None


class RefusalDelta(_PartEvent, tag="response.refusal.delta"):
    delta: str = ""


class RefusalDone(_PartEvent, tag="response.refusal.done"):
    refusal: str | None = None


class ReasoningSummaryDelta(_ItemEvent, tag="response.reasoning_summary_text.delta"):
    summary_index: Index = 0
    delta: str = ""


class ReasoningSummaryDone(_ItemEvent, tag="response.reasoning_summary_text.done"):
    summary_index: Index = 0
    text: str = ""


class ReasoningTextDelta(_PartEvent, tag="response.reasoning_text.delta"):
    delta: str = ""


class ReasoningTextDone(_PartEvent, tag="response.reasoning_text.done"):
    text: str = ""


class _ArgumentsDelta(_ItemEvent):
    delta: str = ""


class FunctionArgumentsDelta(_ArgumentsDelta, tag="response.function_call_arguments.delta"):
    pass


class CustomToolInputDelta(_ArgumentsDelta, tag="response.custom_tool_call_input.delta"):
    pass


class McpArgumentsDelta(_ArgumentsDelta, tag="response.mcp_call_arguments.delta"):
    pass


class FunctionArgumentsDone(_ItemEvent, tag="response.function_call_arguments.done"):
    arguments: str | None = None


class CustomToolInputDone(_ItemEvent, tag="response.custom_tool_call_input.done"):
    input: str | None = None


class McpArgumentsDone(_ItemEvent, tag="response.mcp_call_arguments.done"):
    arguments: str | None = None


class ErrorEvent(_Event, tag="error"):
    """Both shapes: documented flat ``code``/``message``, observed nested ``error``."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    error: Json | None = None


WireEvent = (
    ResponseCreated
    | ResponseQueued
    | ResponseInProgress
    | ResponseCompleted
    | ResponseIncomplete
    | ResponseFailed
    | OutputItemAdded
    | OutputItemDone
    | CodeInProgress
    | CodeInterpreting
    | CodeCallCompleted
    | CodeDelta
    | CodeDeltaDotted
    | CodeDone
    | CodeDoneDotted
    | ShellCommandAdded
    | ShellCommandDelta
    | ShellCommandDone
    | ShellOutputDelta
    | ShellOutputDone
    | ContentPartAdded
    | ContentPartDone
    | TextDelta
    | TextDone
    | AnnotationAdded
    | RefusalDelta
    | RefusalDone
    | ReasoningSummaryDelta
    | ReasoningSummaryDone
    | ReasoningTextDelta
    | ReasoningTextDone
    | FunctionArgumentsDelta
    | CustomToolInputDelta
    | McpArgumentsDelta
    | FunctionArgumentsDone
    | CustomToolInputDone
    | McpArgumentsDone
    | ErrorEvent
)

ABSORBED_TYPES = frozenset(
    {
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.compaction.compacting",
        "response.apply_patch_call_operation_diff.delta",
        "response.apply_patch_call_operation_diff.done",
        "response.audio.delta",
        "response.audio.done",
        "response.audio.transcript.delta",
        "response.audio.transcript.done",
    }
)
"""Known progress events whose content the finished item (``item.completed``) carries."""


class Unrecognized(msgspec.Struct, gc=False):
    """A JSON object whose ``type`` this version does not model."""

    type: str
    raw: Json
    sequence_number: int | None


_decoder = msgspec.json.Decoder(WireEvent)
_response_decoder = msgspec.json.Decoder(WireResponse)
_any_decoder = msgspec.json.Decoder()


def decode_event(data: Payload) -> WireEvent | Unrecognized:
    """Decode one event payload.

    Raises:
        NestingTooDeep: the payload nests deeper than :data:`MAX_DEPTH`; for an event
            whose fields keep no JSON (a delta), only past what msgspec can skip unread
            (about Python's recursion limit, less the caller's stack): fields it does not
            declare are skipped, and measuring every event would cost the hot path.
        UnicodeDecodeError: not UTF-8 (whatever msgspec release is installed).
        msgspec.DecodeError: not JSON.
        msgspec.ValidationError: a known event type with fields of the wrong shape, or a
            JSON value that is not an object with a string ``type``.
    """
    try:
        event: WireEvent = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _unrecognized(data, exc)
    except msgspec.DecodeError:
        _raise_if_not_utf8(data)
        raise
    except RecursionError:
        raise NestingTooDeep() from None
    if kept_too_deep(event, data):
        raise NestingTooDeep()
    return event


decode_known: Callable[[Payload], WireEvent] = _decoder.decode
"""Decode a payload as one of the events respflow models, as fast as msgspec can; it
raises for anything else (another type, invalid JSON), which :func:`decode_event` sorts
out. What it returns still has to pass :func:`kept_too_deep`."""


def kept_too_deep(event: WireEvent, data: Payload) -> bool:
    """Whether the decoded ``event`` keeps JSON nested deeper than :data:`MAX_DEPTH`.

    Only what is kept must be measured: fields not declared were skipped, and a delta's
    declared fields are scalars.
    """
    return type(event) in _HOLDS_JSON and len(data) > _SHALLOW and _nests_too_deep(data)


def _unrecognized(data: Payload, invalid: msgspec.ValidationError) -> Unrecognized:
    """An event whose type respflow does not model; ``invalid`` if it is not one."""
    try:
        raw = decode_json(data)
    except NestingTooDeep:
        raise
    except msgspec.DecodeError:
        _raise_if_not_utf8(data)
        raise
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise invalid
    if raw["type"] in _TAGS:
        raise invalid
    seq = raw.get("sequence_number")
    return Unrecognized(
        type=raw["type"], raw=raw, sequence_number=seq if type(seq) is int else None
    )


def _raise_if_not_utf8(data: Payload) -> None:
    """Raise ``UnicodeDecodeError`` if ``data`` is bytes that are not UTF-8.

    msgspec up to 0.22 raised ``UnicodeDecodeError`` itself; later releases raise a
    ``DecodeError`` that reads like any other syntax error. Checking here, only once
    decoding has already failed, keeps the contract the same for every msgspec and costs
    valid input nothing.
    """
    if not isinstance(data, str):
        data.decode("utf-8")


def decode_response(data: bytes | str) -> WireResponse:
    """Decode a ``Response`` object; raises as :func:`decode_event`."""
    response: WireResponse = decode_bounded(_response_decoder.decode, data)
    return response


def decode_json(data: Payload) -> Any:
    """Decode any JSON document; raises :class:`NestingTooDeep` as :func:`decode_event`."""
    return decode_bounded(_any_decoder.decode, data)


def decode_bounded(decode: Callable[[D], T], data: D) -> T:
    """``decode(data)``, refused with :class:`NestingTooDeep` if ``data`` nests too deeply.

    msgspec recurses once per level and gives up at Python's recursion limit, wherever
    the caller's stack already is; the depth is measured only once decoding succeeded,
    so it is measured on valid JSON, and only when there are enough brackets to matter.
    """
    try:
        value = decode(data)
    except RecursionError:
        raise NestingTooDeep() from None
    if len(data) > _SHALLOW and _nests_too_deep(data):
        raise NestingTooDeep()
    return value


# Each level takes an opening and a closing bracket: a shorter document cannot nest too deep.
_SHALLOW = 2 * MAX_DEPTH


def _nests_too_deep(data: Payload) -> bool:
    """Whether valid JSON nests deeper than MAX_DEPTH; counting the opening brackets (at
    the speed of ``bytes.count``) settles it for nearly everything."""
    if isinstance(data, str):
        if data.count("{") + data.count("[") <= MAX_DEPTH:
            return False
        data = data.encode("utf-8", "surrogatepass")
    elif data.count(b"{") + data.count(b"[") <= MAX_DEPTH:
        return False
    return _depth(data) > MAX_DEPTH


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


def _depth(data: bytes | bytearray) -> int:
    """How deeply valid JSON nests: its brackets outside strings, summed in C loops.

    In valid JSON a backslash is only ever in a string, where it starts an escape:
    taking out the escaped backslashes (pairs, from the left, as a reader pairs them)
    and then the escaped quotes leaves quotes that only open and close strings, so
    what is outside strings is every other piece between quotes. (Some code holds a
    bracket in every line: a regular expression over the whole text took ten times as
    long.)
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _tags() -> frozenset[str]:
    tags = set()
    for cls in get_args(WireEvent):
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str)
        tags.add(tag)
    return frozenset(tags)


_TAGS = _tags()


def _holds_json(cls: type[msgspec.Struct]) -> bool:
    """Whether an event of this class keeps JSON of any depth (a dict, a list, Any)."""
    for field in msgspec.structs.fields(cls):
        union = get_origin(field.type) in (Union, UnionType)
        if not all(_scalar(t) for t in (get_args(field.type) if union else (field.type,))):
            return True
    return False


def _scalar(kind: Any) -> bool:
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    return kind in _SCALARS


_SCALARS = frozenset({str, int, float, bool, type(None)})
_HOLDS_JSON = frozenset(cls for cls in get_args(WireEvent) if _holds_json(cls))
