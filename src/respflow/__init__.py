"""respflow: the OpenAI Responses API stream, rebuilt into events an application can trust.

The core is :class:`Assembler`, a sans-I/O state machine: wire events in, normalized
events out (see ``respflow.events`` in the README for the contract).
"""

import importlib
import typing

from ._core.assembler import Assembler
from ._core.links import SandboxLink, find_links, find_uncovered_links
from ._core.sse import Frame, OversizedFrame, SSEDecoder
from ._events import (
    END_TYPES,
    CodeCompleted,
    CodeDelta,
    CodeDone,
    CodeImage,
    CodeInterpreting,
    CodeLogs,
    CodeOutput,
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
    StreamDropped,
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
from ._exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    HTTPStatusError,
    LeaseLost,
    NotFound,
    RateLimited,
    RecordingError,
    RespflowError,
    ResponseNotFound,
    ResumeExpired,
    ServerError,
    TooOld,
    UsageError,
)

if typing.TYPE_CHECKING:
    from ._delivery.broker import Broker, Lease, LogStatus, MemoryBroker, Subscription
    from ._delivery.hub import Hub, Lagged, Reader
    from ._delivery.pipeline import Attached, Pipeline, Policy, Sink, SinkFailed, attach, deliver
    from ._delivery.plugins import available_sinks, sink_from_spec
    from ._delivery.recorder import Recorder
    from ._delivery.runner import Runner
    from ._delivery.sinks import CallbackSink, JsonlSink, LogSink
    from ._files.fetcher import FileFetcher, fetch_files
    from ._files.manifest import (
        FileProblem,
        FilesReport,
        Manifest,
        ManifestEntry,
        read_manifest,
        verify_files,
    )
    from ._files.names import safe_filename
    from ._files.rewrite import LinkRewriter
    from ._files.serving import files_app
    from ._files.storage import FileTooLarge, LocalStorage, Storage, StoredFile
    from ._protocols.agui import AGUIEncoder
    from ._protocols.stream import ProtocolStream
    from ._protocols.vercel import VercelEncoder
    from ._server.app import App, app
    from ._server.events import Authorize, events_app
    from ._sources.bytes import aiter_events
    from ._sources.openai import (
        CODE_OUTPUTS,
        EventStream,
        Reconnect,
        cancel,
        from_response,
        from_sdk_stream,
        resume,
        stream,
    )
    from ._sources.recording import RecordingFormat, detect_format, replay

# Everything above the core loads on first use, so `import respflow` (and the Assembler,
# `respflow replay`) pays for neither the openai SDK, anyio's machinery nor the servers.
_LAZY: dict[str, str] = {
    "CODE_OUTPUTS": "_sources.openai",
    "EventStream": "_sources.openai",
    "Reconnect": "_sources.openai",
    "cancel": "_sources.openai",
    "from_response": "_sources.openai",
    "from_sdk_stream": "_sources.openai",
    "resume": "_sources.openai",
    "stream": "_sources.openai",
    "aiter_events": "_sources.bytes",
    "RecordingFormat": "_sources.recording",
    "detect_format": "_sources.recording",
    "replay": "_sources.recording",
    "FileFetcher": "_files.fetcher",
    "fetch_files": "_files.fetcher",
    "FileProblem": "_files.manifest",
    "FilesReport": "_files.manifest",
    "Manifest": "_files.manifest",
    "ManifestEntry": "_files.manifest",
    "read_manifest": "_files.manifest",
    "verify_files": "_files.manifest",
    "safe_filename": "_files.names",
    "LinkRewriter": "_files.rewrite",
    "files_app": "_files.serving",
    "FileTooLarge": "_files.storage",
    "LocalStorage": "_files.storage",
    "Storage": "_files.storage",
    "StoredFile": "_files.storage",
    "Broker": "_delivery.broker",
    "Lease": "_delivery.broker",
    "LogStatus": "_delivery.broker",
    "MemoryBroker": "_delivery.broker",
    "Subscription": "_delivery.broker",
    "Hub": "_delivery.hub",
    "Lagged": "_delivery.hub",
    "Reader": "_delivery.hub",
    "Attached": "_delivery.pipeline",
    "Pipeline": "_delivery.pipeline",
    "Policy": "_delivery.pipeline",
    "Sink": "_delivery.pipeline",
    "SinkFailed": "_delivery.pipeline",
    "attach": "_delivery.pipeline",
    "deliver": "_delivery.pipeline",
    "Runner": "_delivery.runner",
    "Recorder": "_delivery.recorder",
    "available_sinks": "_delivery.plugins",
    "sink_from_spec": "_delivery.plugins",
    "CallbackSink": "_delivery.sinks",
    "JsonlSink": "_delivery.sinks",
    "LogSink": "_delivery.sinks",
    "AGUIEncoder": "_protocols.agui",
    "ProtocolStream": "_protocols.stream",
    "VercelEncoder": "_protocols.vercel",
    "App": "_server.app",
    "app": "_server.app",
    "Authorize": "_server.events",
    "events_app": "_server.events",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'respflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"respflow.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "CODE_OUTPUTS",
    "END_TYPES",
    "AGUIEncoder",
    "App",
    "Assembler",
    "Attached",
    "AuthenticationFailed",
    "Authorize",
    "Broker",
    "CallbackSink",
    "CodeCompleted",
    "CodeDelta",
    "CodeDone",
    "CodeImage",
    "CodeInterpreting",
    "CodeLogs",
    "CodeOutput",
    "CodeOutputsMissing",
    "CodeStarted",
    "ConnectionFailed",
    "Event",
    "EventBase",
    "EventStream",
    "FileCited",
    "FileFailed",
    "FileFetcher",
    "FileLink",
    "FileProblem",
    "FileSaved",
    "FileTooLarge",
    "FilesReport",
    "Frame",
    "HTTPStatusError",
    "Hub",
    "ItemCompleted",
    "JsonlSink",
    "Lagged",
    "Lease",
    "LeaseLost",
    "LinkRewriter",
    "LocalStorage",
    "LogSink",
    "LogStatus",
    "Manifest",
    "ManifestEntry",
    "MemoryBroker",
    "MessageCompleted",
    "NotFound",
    "OversizedFrame",
    "Pipeline",
    "Policy",
    "ProtocolStream",
    "RateLimited",
    "Reader",
    "ReasoningDelta",
    "ReasoningDone",
    "Reconnect",
    "Recorder",
    "RecordingError",
    "RecordingFormat",
    "RespflowError",
    "ResponseCompleted",
    "ResponseFailed",
    "ResponseIncomplete",
    "ResponseNotFound",
    "ResponseStarted",
    "ResumeExpired",
    "Runner",
    "SSEDecoder",
    "SandboxLink",
    "ServerError",
    "Sink",
    "SinkFailed",
    "Storage",
    "StoredFile",
    "StreamDropped",
    "StreamError",
    "StreamGap",
    "StreamTruncated",
    "Subscription",
    "TextDelta",
    "TextDone",
    "TooOld",
    "Unknown",
    "UsageError",
    "VercelEncoder",
    "__version__",
    "aiter_events",
    "app",
    "attach",
    "available_sinks",
    "cancel",
    "decode_event",
    "deliver",
    "detect_format",
    "encode_event",
    "events_app",
    "fetch_files",
    "files_app",
    "find_links",
    "find_uncovered_links",
    "from_response",
    "from_sdk_stream",
    "parse_cursor",
    "read_manifest",
    "replay",
    "resume",
    "safe_filename",
    "sink_from_spec",
    "stream",
    "verify_files",
]
