"""What the OpenTelemetry GenAI semantic conventions call things, and how respflow's
events map onto them. Pure functions: no spans here."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ERROR_TYPE",
    "OFFICIAL_INSTRUMENTATIONS",
    "finish_reason",
    "official_instrumentation_active",
    "usage_attributes",
]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"
CONTAINER_ID = "respflow.container.id"

# The conventions' tool types are function (the client runs it), extension (the agent's
# side runs it, calling out to real systems) and datastore (retrieval). Code Interpreter
# and the hosted shell run in OpenAI's containers, never in the client: extension.
HOSTED_TOOL_TYPE = "extension"

# Output items the client has to act on: the response stopped to have a tool called.
_CLIENT_TOOL_CALLS = frozenset(
    {"function_call", "custom_tool_call", "computer_call", "local_shell_call", "apply_patch_call"}
)

# incomplete_details.reason values that have a name across providers.
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}

# Usage fields of a Responses API ``usage`` object, by attribute:
# (attribute, field, detail inside ``<field>_details`` or None).
_USAGE_FIELDS = (
    ("gen_ai.usage.input_tokens", "input_tokens", None),
    ("gen_ai.usage.output_tokens", "output_tokens", None),
    ("gen_ai.usage.cache_read.input_tokens", "input_tokens", "cached_tokens"),
    ("gen_ai.usage.cache_creation.input_tokens", "input_tokens", "cache_write_tokens"),
    ("gen_ai.usage.reasoning.output_tokens", "output_tokens", "reasoning_tokens"),
)

OFFICIAL_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.genai.openai",
    "opentelemetry.instrumentation.openai_v2",
)
"""The official OpenAI instrumentation's modules: the current one, then the deprecated one."""


def usage_attributes(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """The token counts a response reported, as ``gen_ai.usage.*`` attributes."""
    if not isinstance(usage, Mapping):
        return {}
    found: dict[str, int] = {}
    for attribute, field, detail in _USAGE_FIELDS:
        value: Any = usage.get(field)
        if detail is not None:
            details = usage.get(f"{field}_details")
            value = details.get(detail) if isinstance(details, Mapping) else None
        # bool is an int too, and the API never means a count by it.
        if isinstance(value, int) and not isinstance(value, bool):
            found[attribute] = value
    return found


def finish_reason(status: str, incomplete_details: Mapping[str, Any] | None = None) -> str:
    """Why an output item or a response stopped, in the conventions' words."""
    if status == "completed":
        return "stop"
    if status in ("failed", "cancelled"):
        return "error"
    if status == "incomplete" and isinstance(incomplete_details, Mapping):
        reason = incomplete_details.get("reason")
        if isinstance(reason, str) and reason:
            return _INCOMPLETE_REASONS.get(reason, reason)
    return status


def is_client_tool_call(item_type: str) -> bool:
    return item_type in _CLIENT_TOOL_CALLS


def official_instrumentation_active() -> bool:
    """Whether the official OpenAI instrumentation is instrumenting the openai SDK now.

    It makes its own ``chat`` span for every request, so a second one from respflow would
    count the same call twice. An instrumentation has to be imported to be active, so
    only modules already imported are asked: nothing is imported here.
    """
    for name in OFFICIAL_INSTRUMENTATIONS:
        instrumentor = getattr(sys.modules.get(name), "OpenAIInstrumentor", None)
        # A BaseInstrumentor is a singleton: constructing it returns the one in use.
        if instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry:
            return True
    return False
