"""Capability URLs: a signed, expiring right to read one response's events or one file.

A browser's ``EventSource`` cannot send an ``Authorization`` header, and an ``<img>`` or a
download link cannot either, so the right travels in the URL: ``?exp=<unix time>&sig=<mac>``,
an HMAC-SHA256 over what the URL grants, under a secret every instance shares. Any
instance given the same secret honours the URLs another handed out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import urlencode

__all__ = ["Signer", "Verdict", "events_grant", "file_grant"]

Verdict = Literal["ok", "missing", "invalid", "expired"]


class Signer:
    """Signs and checks capability URLs.

    Args:
        secret: the shared secret (at least 16 bytes; instances that should honour each
            other's URLs need the same one).
        ttl: seconds a URL stays valid.
        clock: wall-clock seconds (URLs cross machines, so not a monotonic clock).
    """

    def __init__(
        self, secret: str | bytes, *, ttl: float = 86_400.0, clock: Callable[[], float] = time.time
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._key = key
        self.ttl = ttl
        self._clock = clock

    def _mac(self, grant: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{grant}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def query(self, grant: str) -> str:
        """``exp=...&sig=...`` granting ``grant`` until ``ttl`` from now."""
        expires = int(self._clock() + self.ttl)
        return urlencode({"exp": expires, "sig": self._mac(grant, expires)})

    def check(self, grant: str, params: Mapping[str, str]) -> Verdict:
        """Whether the query ``params`` of a request grant ``grant`` now."""
        exp, sig = params.get("exp"), params.get("sig")
        if not exp or not sig:
            return "missing"
        # ASCII only: compare_digest raises TypeError for a str with other characters
        # (a 500 for any ?sig=é), and isdigit() takes other scripts' digits too.
        if not (exp.isascii() and exp.isdigit() and sig.isascii()) or len(exp) > 12:
            return "invalid"
        if not hmac.compare_digest(self._mac(grant, int(exp)), sig):
            return "invalid"
        if int(exp) < self._clock():
            return "expired"
        return "ok"


def events_grant(response_id: str) -> str:
    return f"events\n{response_id}"


def file_grant(response_id: str, filename: str) -> str:
    return f"file\n{response_id}\n{filename}"
