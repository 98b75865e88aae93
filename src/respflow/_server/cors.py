"""Letting pages on other origins use the app (``respflow serve --allow-origin``).

What is allowed follows what the app's clients do. A page starts and cancels responses
with ``fetch`` (``POST``, ``authorization``, ``content-type: application/json``) and
follows one with ``EventSource`` or ``fetch`` (``GET``, perhaps ``last-event-id``);
files are ``GET`` and ``HEAD``. Nothing the app serves needs a cookie: API callers send
the bearer token as a header and browsers follow signed URLs, so credentialed requests
are never allowed, which also keeps ``*`` usable.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "EXPOSED_HEADERS", "allow_origins", "origin"]

ALLOWED_METHODS = ("GET", "HEAD", "POST")
ALLOWED_HEADERS = ("authorization", "content-type", "last-event-id")
"""The request headers the app reads or its clients send that a browser does not let
through on its own (``content-type`` is only free for form bodies, not JSON)."""

EXPOSED_HEADERS = ("retry-after", "content-disposition")
"""Response headers a page's script may want and cannot read unless exposed: how long to
wait after a 429, and a file's name. A stream's resume point is not among them: it is
each frame's ``id:`` line, in the body."""

_BARE = re.compile(r"[A-Za-z0-9._-]+(:[0-9]{1,5})?")
_HOST = re.compile(r"[a-z0-9._-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXAMPLE = "pass it as a browser sends it, e.g. https://chat.example.com or http://localhost:3000"


def origin(text: str) -> str:
    """``text`` as the ``Origin`` header a browser sends for that page (scheme and host
    in lower case, no default port), or ``*``; ValueError saying what to pass if it is
    not an origin."""
    if text == "*":
        return text
    if text.lower() == "null":
        raise ValueError(
            f"{text!r} is the origin of sandboxed frames and local files, any of which "
            f"could then call this server; {_EXAMPLE}"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin; {_EXAMPLE}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if "://" not in text:
        bare = text.rstrip("/")
        if not _BARE.fullmatch(bare):  # suggest nothing made of what the user may not see
            raise ValueError(f"{text!r} is not an origin; {_EXAMPLE}")
        raise ValueError(
            f"{text!r} is not an origin: it needs a scheme (pass https://{bare} or http://{bare})"
        )
    if not scheme or not host:
        raise ValueError(f"{text!r} is not an origin (it needs a scheme and a host); {_EXAMPLE}")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        shown = f"{scheme}://{parts.netloc}"
        raise ValueError(
            f"{text!r} is not an origin: an origin has no path, query or trailing slash "
            f"(pass {shown})"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r} is not an origin: it has a user name; {_EXAMPLE}")
    if not host.isascii():
        raise ValueError(f"{text!r}: write the host in its ASCII (xn--) form, as browsers send it")
    if ":" not in host and not _HOST.fullmatch(host):
        raise ValueError(f"{text!r} is not an origin: {host!r} is not a host name; {_EXAMPLE}")
    shown_host = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{shown_host}"
    return f"{scheme}://{shown_host}:{port}"


def allow_origins(app: Any, origins: list[str]) -> Any:
    """``app`` wrapped in Starlette's CORS middleware, letting pages on ``origins`` (as
    :func:`origin` gives them; ``*`` for any) call it."""
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        app,
        allow_origins=["*"] if "*" in origins else origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=False,
        expose_headers=EXPOSED_HEADERS,
    )
