"""respflow to OpenTelemetry: each response a ``chat`` span, each Code Interpreter or hosted
shell call an ``execute_tool`` span, following the GenAI semantic conventions.

See the README beside this package.
"""

from __future__ import annotations

import respflow

from ._conventions import OFFICIAL_INSTRUMENTATIONS, official_instrumentation_active
from ._sink import SCOPE, VERSION, OtelSink

__all__ = [
    "OFFICIAL_INSTRUMENTATIONS",
    "SCOPE",
    "OtelSink",
    "official_instrumentation_active",
    "sink_from_spec",
]

__version__ = VERSION


def sink_from_spec(argument: str) -> OtelSink:
    """``otel`` (spans to the global tracer provider) or ``otel:content`` (with the code
    and logs of each call too)."""
    if argument not in ("", "content"):
        raise respflow.UsageError(
            f"otel takes no argument but 'content' (otel:content), not {argument!r}"
        )
    return OtelSink(capture_content=argument == "content")
