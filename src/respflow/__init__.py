"""respflow: the OpenAI Responses API stream, rebuilt into events an application can trust.

The core is :class:`Assembler`, a sans-I/O state machine: wire events in, normalized
events out (see ``respflow.events`` in the README for the contract).
"""

from ._assembler import Assembler
from ._events import (
    END_TYPES,
    CodeCompleted,
    CodeDelta,
    CodeDone,
    CodeImage,
    CodeInterpreting,
    CodeLogs,
    CodeOutputsMissing,
    CodeStarted,
    Event,
    EventBase,
    FileCited,
    FileFailed,
    FileLink,
    FileSaved,
    ItemCompleted,
    MessageCompleted,
    ReasoningDelta,
    ReasoningDone,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    StreamError,
    StreamGap,
    StreamTruncated,
    TextDelta,
    TextDone,
    Unknown,
    decode_event,
    encode_event,
    parse_cursor,
)
from ._exceptions import RecordingError, RespflowError, UsageError
from ._links import SandboxLink, find_links, find_uncovered_links
from ._recording import RecordingFormat, detect_format, replay
from ._source import aiter_events
from ._sse import Frame, OversizedFrame, SSEDecoder

__version__ = "0.1.0"

__all__ = [
    "END_TYPES",
    "Assembler",
    "CodeCompleted",
    "CodeDelta",
    "CodeDone",
    "CodeImage",
    "CodeInterpreting",
    "CodeLogs",
    "CodeOutputsMissing",
    "CodeStarted",
    "Event",
    "EventBase",
    "FileCited",
    "FileFailed",
    "FileLink",
    "FileSaved",
    "Frame",
    "ItemCompleted",
    "MessageCompleted",
    "OversizedFrame",
    "ReasoningDelta",
    "ReasoningDone",
    "RecordingError",
    "RecordingFormat",
    "RespflowError",
    "ResponseCompleted",
    "ResponseFailed",
    "ResponseIncomplete",
    "ResponseStarted",
    "SSEDecoder",
    "SandboxLink",
    "StreamError",
    "StreamGap",
    "StreamTruncated",
    "TextDelta",
    "TextDone",
    "Unknown",
    "UsageError",
    "__version__",
    "aiter_events",
    "decode_event",
    "detect_format",
    "encode_event",
    "find_links",
    "find_uncovered_links",
    "parse_cursor",
    "replay",
]
