"""Helpers for testing code that consumes respflow: realistic streams without the API."""

from ._builder import StreamBuilder, to_jsonl, to_sse

__all__ = ["StreamBuilder", "to_jsonl", "to_sse"]
