"""ASGI messages as a server would give them, for tests that call an app directly."""

from __future__ import annotations

from typing import Any


def http_scope(url: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The scope of a GET of ``url`` (a path with an optional query) from a loopback
    client, with ``headers``."""
    path, _, query = url.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
