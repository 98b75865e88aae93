"""The normalized events: respflow's contract with its users.

Every event is a frozen msgspec Struct in one union tagged on ``type``, and encodes to one
JSON object. All carry ``response_id``, the ``sequence_number`` of the wire event that
produced them, and a ``cursor`` (``"<sequence_number>-<k>"``) that is unique and ordered
within a response: sinks, websockets and brokers all use it as the resume id.

A type, once shipped, keeps its name and its fields; new fields only ever come with
defaults, so consumers decoding older JSON keep working.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import msgspec

__all__ = [
    "END_TYPES",
    "CodeCompleted",
    "CodeDelta",
    "CodeDone",
    "CodeImage",
    "CodeInterpreting",
    "CodeLogs",
    "CodeOutput",
    "CodeOutputsMissing",
    "CodeStarted",
    "Event",
    "EventBase",
    "FileCited",
    "FileFailed",
    "FileLink",
    "FileSaved",
    "ItemCompleted",
    "MessageCompleted",
    "ReasoningDelta",
    "ReasoningDone",
    "ResponseCompleted",
    "ResponseFailed",
    "ResponseIncomplete",
    "ResponseStarted",
    "StreamDropped",
    "StreamError",
    "StreamGap",
    "StreamTruncated",
    "TextDelta",
    "TextDone",
    "Unknown",
    "decode_event",
    "encode_event",
    "parse_cursor",
]

Json = dict[str, Any]
Tool = Literal["code_interpreter", "shell"]
MissingReason = Literal["include_not_requested", "background_mode", "empty"]


class EventBase(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    """Fields every event has: its response, the ``sequence_number`` of the wire event
    that produced it, and its ``cursor`` (``"<sequence_number>-<k>"``), the id to resume
    after. Match on the subclasses, or on ``type``; ``Event`` is their union."""

    response_id: str
    sequence_number: int
    cursor: str

    @property
    def type(self) -> str:
        """The event's name in the contract, e.g. ``"code.delta"``; ``type`` in its JSON."""
        return cast(str, self.__struct_config__.tag)


class ResponseStarted(EventBase, frozen=True, tag="response.started"):
    """The response exists (``response.created``): its model, creation time (Unix
    seconds) and whether it runs in background mode, so it can be resumed."""

    model: str | None = None
    created_at: int | float | None = None
    background: bool = False


class CodeStarted(EventBase, frozen=True, tag="code.started"):
    """A Code Interpreter call (``tool="code_interpreter"``) or hosted shell call
    (``tool="shell"``) began; ``item_id`` names it in the events that follow."""

    item_id: str
    output_index: int
    container_id: str | None = None
    tool: Tool = "code_interpreter"


class CodeDelta(EventBase, frozen=True, tag="code.delta"):
    """More of the call's code as the model writes it (a shell call's commands, one a
    line); append ``delta`` to what came before."""

    item_id: str
    output_index: int
    delta: str


class CodeDone(EventBase, frozen=True, tag="code.done"):
    """The call's code is complete: ``code`` is all of it, the deltas joined."""

    item_id: str
    output_index: int
    code: str


class CodeInterpreting(EventBase, frozen=True, tag="code.interpreting"):
    """The container is running the code; its output comes later."""

    item_id: str
    output_index: int


class CodeOutput(EventBase, frozen=True, tag="code.output"):
    """Output as the command produces it: the hosted ``shell`` tool streams it live
    (Code Interpreter never does; its output arrives whole, as ``code.logs``)."""

    item_id: str
    output_index: int
    delta: str
    stream: Literal["stdout", "stderr"] = "stdout"
    command_index: int = 0


class CodeLogs(EventBase, frozen=True, tag="code.logs"):
    """What the code printed, from the finished call (for the shell, per command, its
    stdout then stderr): Code Interpreter never streams it, and sends it only with
    ``include=["code_interpreter_call.outputs"]`` (else ``code.outputs_missing``)."""

    item_id: str
    output_index: int
    logs: str


class CodeImage(EventBase, frozen=True, tag="code.image"):
    """An image the code showed (a plot); the file fetcher saves it as ``file.saved``
    with ``resolved_by="image"``."""

    item_id: str
    output_index: int
    url: str
    """Usually an inline ``data:image/png;base64,...`` URL."""


class CodeCompleted(EventBase, frozen=True, tag="code.completed"):
    """The rebuilt call. ``status`` is ``incomplete`` for a call the stream cut off."""

    item_id: str
    output_index: int
    status: str
    code: str
    outputs: list[Json] | None
    container_id: str | None = None
    tool: Tool = "code_interpreter"


class CodeOutputsMissing(EventBase, frozen=True, tag="code.outputs_missing"):
    """A call finished with no outputs; ``reason`` says why and ``hint`` what to change
    (most often: add ``"code_interpreter_call.outputs"`` to ``include``)."""

    item_id: str
    output_index: int
    reason: MissingReason
    hint: str


class TextDelta(EventBase, frozen=True, tag="text.delta"):
    """More answer text; append ``delta`` to the part ``item_id`` / ``content_index``."""

    item_id: str
    output_index: int
    content_index: int
    delta: str


class TextDone(EventBase, frozen=True, tag="text.done"):
    """An answer part is complete: ``text`` is all of it (the deltas joined)."""

    item_id: str
    output_index: int
    content_index: int
    text: str


class FileCited(EventBase, frozen=True, tag="file.cited"):
    """A file annotation: ``container_file_citation``, ``file_citation`` or ``file_path``.

    A zero-width span (``start_index == end_index``) is normal: Code Interpreter cites the
    images it displays that way, at index 0.
    """

    item_id: str
    output_index: int
    content_index: int
    kind: str
    file_id: str
    filename: str | None
    start_index: int
    end_index: int
    container_id: str | None = None


class FileLink(EventBase, frozen=True, tag="file.link"):
    """A ``sandbox:/mnt/data/...`` (or bare ``/mnt/data/...``) link that no annotation covers.

    ``path`` is the container path (``/mnt/data/...``, percent-decoded); the span is the
    whole link target in the message text. ``container_id`` is the container of the
    response's latest code interpreter call, where the file most likely lives.
    """

    item_id: str
    output_index: int
    content_index: int
    path: str
    start_index: int
    end_index: int
    container_id: str | None = None


class FileSaved(EventBase, frozen=True, tag="file.saved"):
    """A file the response produced is stored (by the file fetcher).

    ``resolved_by`` says how it was found: ``citation`` (an annotation), ``link`` (a bare
    sandbox link matched in the container's listing), ``image`` (a ``code.image`` data
    URL), ``container`` (every assistant file was asked for). ``path`` is its container
    path, where known; ``location`` where it was stored.

    ``produced_by`` is the ``item_id`` of the code call (Code Interpreter or shell) that
    made the file, ``provenance`` how that was decided: ``code_names_path`` (the call's
    code names the file; with several, the latest whose code writes it, else the latest),
    ``output_names_path`` (only its output does), ``image_output`` (the image it
    showed), ``last_call_in_container`` (nothing names it: the latest call in its container
    before the citation) or ``unknown`` (no call to name). ``cited_by`` is the message
    that cited or linked it.
    """

    container_id: str | None
    file_id: str | None
    filename: str
    location: str
    size: int
    sha256: str
    media_type: str | None = None
    resolved_by: str = "citation"
    path: str | None = None
    url: str | None = None
    """Where the file is served, once a server says (``respflow.app``); ``location`` is
    then that URL too, never a path on the server."""
    produced_by: str | None = None
    provenance: str = "unknown"
    cited_by: str | None = None


class FileFailed(EventBase, frozen=True, tag="file.failed"):
    """A file could not be saved; ``reason`` says why and ``hint`` what to do.

    ``status`` is the HTTP status of the last try (None: no answer or not HTTP);
    ``path`` is the sandbox path of a link that could not be resolved or fetched.
    """

    container_id: str | None
    file_id: str | None
    status: int | None
    reason: str
    hint: str
    path: str | None = None


class MessageCompleted(EventBase, frozen=True, tag="message.completed"):
    """The rebuilt assistant message.

    ``text`` joins the message's ``output_text`` parts; ``annotations`` are the parts'
    annotations in order, with indices shifted so that ``text[start:end]`` stays right
    when there is more than one part.
    """

    item_id: str
    output_index: int
    status: str
    text: str
    annotations: list[Json]
    phase: str | None = None


class ReasoningDelta(EventBase, frozen=True, tag="reasoning.delta"):
    """More of the model's reasoning: a summary part (``part="summary"``) or reasoning
    text (``part="text"``), numbered by ``index`` within its item."""

    item_id: str
    output_index: int
    delta: str
    index: int = 0
    part: Literal["summary", "text"] = "summary"


class ReasoningDone(EventBase, frozen=True, tag="reasoning.done"):
    """A reasoning summary part (or reasoning text) is complete: ``text`` is all of it."""

    item_id: str
    output_index: int
    text: str
    index: int = 0
    part: Literal["summary", "text"] = "summary"


class ItemCompleted(EventBase, frozen=True, tag="item.completed"):
    """Any other output item (reasoning, web search, function call, shell, MCP ...), raw."""

    item_id: str | None
    output_index: int
    item_type: str
    status: str | None
    item: Json


class ResponseCompleted(EventBase, frozen=True, tag="response.completed"):
    """The response finished; one of the four end events, always its last. ``usage``
    is the API's token count."""

    status: str = "completed"
    usage: Json | None = None
    error: Json | None = None
    incomplete_details: Json | None = None


class ResponseIncomplete(EventBase, frozen=True, tag="response.incomplete"):
    """The response stopped short (``incomplete_details`` says why, e.g. the output
    token limit); an end event, always its last."""

    status: str = "incomplete"
    usage: Json | None = None
    error: Json | None = None
    incomplete_details: Json | None = None


class ResponseFailed(EventBase, frozen=True, tag="response.failed"):
    """The response failed (``error`` says how) or was cancelled (``status``); an end
    event, always its last."""

    status: str = "failed"
    usage: Json | None = None
    error: Json | None = None
    incomplete_details: Json | None = None


class StreamError(EventBase, frozen=True, tag="stream.error"):
    """Something went wrong; never an end by itself.

    ``fatal`` means the server has stopped the stream (an API ``error`` event); an end
    (``response.failed`` or ``stream.truncated``) follows. A non-fatal error (one frame
    that did not decode) is reported and the stream goes on.
    """

    code: str
    message: str
    fatal: bool


class StreamGap(EventBase, frozen=True, tag="stream.gap"):
    """Sequence numbers were skipped: the wire events numbered ``expected`` to
    ``received - 1`` never arrived. Not an end: the stream goes on."""

    expected: int
    received: int


class StreamDropped(EventBase, frozen=True, tag="stream.dropped"):
    """Sent to one sink only: it fell behind and these events were not delivered to it.

    ``first_cursor`` .. ``last_cursor`` is the range it missed, all older than the event
    that follows; a client that keeps its own history (or an SSE/websocket endpoint with
    ``Last-Event-ID``) can fetch them again. Its own cursor is ``last_cursor``: resuming
    after it is right.
    """

    count: int
    first_cursor: str
    last_cursor: str


class StreamTruncated(EventBase, frozen=True, tag="stream.truncated"):
    """The stream ended with no end event from the API (a dropped connection, a cut
    body, a cancelled pipeline); an end event, always its last. ``message`` says whether
    and how to resume (:func:`respflow.resume` with ``last_sequence_number``)."""

    last_sequence_number: int | None
    message: str = ""


class Unknown(EventBase, frozen=True, tag="unknown"):
    """A wire event this version does not know, passed on untouched."""

    raw: Json


Event = (
    ResponseStarted
    | CodeStarted
    | CodeDelta
    | CodeDone
    | CodeInterpreting
    | CodeOutput
    | CodeLogs
    | CodeImage
    | CodeCompleted
    | CodeOutputsMissing
    | TextDelta
    | TextDone
    | FileCited
    | FileLink
    | FileSaved
    | FileFailed
    | MessageCompleted
    | ReasoningDelta
    | ReasoningDone
    | ItemCompleted
    | ResponseCompleted
    | ResponseIncomplete
    | ResponseFailed
    | StreamError
    | StreamGap
    | StreamDropped
    | StreamTruncated
    | Unknown
)
"""Every normalized event; ``match`` on the class or read ``type`` after encoding."""

END_TYPES: tuple[type[EventBase], ...] = (
    ResponseCompleted,
    ResponseIncomplete,
    ResponseFailed,
    StreamTruncated,
)
"""The ends: exactly one of these closes every response, and it is always its last event."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: EventBase) -> bytes:
    """One event as compact JSON, ``type`` first."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """The inverse of :func:`encode_event`, for consumers of JSONL or a broker."""
    event: Event = _decoder.decode(data)
    return event


def parse_cursor(cursor: str) -> tuple[int, int]:
    """``"12-3"`` -> ``(12, 3)``: cursors compare correctly as these tuples.

    Only ASCII digits are read, as respflow writes them: ``int()`` alone also takes
    whitespace and line ends around a number, ``+``, ``_`` and other scripts' digits, and
    a cursor from a reader is echoed in replies (line ends there would cut an SSE frame).
    """
    seq, _, k = cursor.rpartition("-")
    if cursor.isascii() and k.isdigit() and seq.lstrip("-").isdigit():
        try:
            return int(seq), int(k)
        except ValueError:  # "--5", or more digits than int() reads
            pass
    raise ValueError(f"not a respflow cursor: {cursor!r} (expected '<seq>-<k>')")
