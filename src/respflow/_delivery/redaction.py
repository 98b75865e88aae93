"""Secrets out of what respflow logs: by their shape in text, and by the name of the field
that holds them. Numbers are never secrets: token usage is what teams log for cost.

Shapes: OpenAI keys (``sk-...``), ``Bearer`` tokens in any case, ``Basic`` credentials,
JWTs (Entra ID tokens), credentials in a URL (``https://user:pass@host``), secret query or
form parameters (``api-key=``, ``key=``, ``token=``, ``sig=`` ...) and header or JSON
fields (``api-key: ...``, ``"authorization": "..."``). Names: a field whose last word is
key, secret, password, token, authorization, cookie, credential or signature
(``api_key``, ``apiKey``, ``x-api-key``, ``access_token``; not ``input_tokens``).
"""

from __future__ import annotations

import binascii
import logging
import re
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_text", "redacting_logger"]

REDACTED = "[redacted]"

_SECRET_WORDS = frozenset(
    {
        "apikey",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "key",
        "keys",
        "passwd",
        "password",
        "secret",
        "secrets",
        "sig",
        "signature",
        "token",
    }
)
_WORDS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

# Names that hold a secret where text says `name=value`: anywhere, the unmistakable
# ones and longer names ending in key or token (OPENAI_API_KEY, access_token); the bare
# short ones only as URL query parameters, since code says `sorted(x, key=len)`.
_ASSIGNED_NAME = (
    r"\b(?:[A-Za-z0-9]+[-_])*(?:api[-_]?key|secret|password|passwd)"
    r"|\b(?:[A-Za-z0-9]+[-_])+(?:key|token|sig|signature)"
    r"|(?<=[?&;])(?:key|token|sig|signature|auth|code)"
)
# Names that hold a secret where text says `name: value` (headers, JSON, YAML).
_HEADER = r"(?:[A-Za-z0-9]+[-_])*(?:api[-_]?key|authorization|secret|password|passwd|token|cookie)"

_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"<>]+@")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_BASIC = re.compile(r"(?i)\b(basic)(\s+)([A-Za-z0-9+/]{4,}={0,2})")
_OPENAI_KEY = re.compile(r"\b(?:sk|sess)-[A-Za-z0-9_-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ASSIGNED = re.compile(rf"(?i)({_ASSIGNED_NAME})=([^\s&#'\",;()\[\]{{}}<>]+)")
_FIELD = re.compile(
    rf"(?i)([\"']?)(\b{_HEADER})\1(\s*:\s*)"
    r"(\"(?:[^\"\\\r\n]|\\.)*\"|'[^'\r\n]*'|[^\s\"',;{}\[\]][^\r\n\"',;{}]*)"
)


# Where a form's "+" (a space) hides a shape that needs whitespace: "Bearer+...", "key:+...".
# Only there is text without "%" read decoded; "+" alone is common (code, arithmetic).
_PLUS_SPACED = re.compile(r"(?i)\b(?:bearer|basic)\+|:\+")


def redact_text(text: str) -> str:
    """``text`` with every secret-shaped part replaced by ``[redacted]``.

    Percent-encoded text (a URL inside a URL, a form body) is looked at decoded too: a
    key there is ``%20sk-...`` or ``token%3D...``, shapes that its encoding hides. If the
    decoded text holds a secret, the text is given back decoded, redacted.
    """
    clean = _shapes_redacted(text)
    if "%" not in clean and ("+" not in clean or not _PLUS_SPACED.search(clean)):
        return clean
    # Imported here: most text has no percent sign, and a process's start pays for it.
    from urllib.parse import unquote_plus

    decoded = unquote_plus(clean)
    if decoded == clean:
        return clean
    redacted = _shapes_redacted(decoded)
    return redacted if redacted != decoded else clean


def _shapes_redacted(text: str) -> str:
    text = _USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    text = _BEARER.sub(rf"\g<1>\g<2>{REDACTED}", text)
    text = _BASIC.sub(_basic, text)
    text = _OPENAI_KEY.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _ASSIGNED.sub(rf"\g<1>={REDACTED}", text)
    return _FIELD.sub(_field, text)


def _basic(match: re.Match[str]) -> str:
    # "Basic" is an English word: only what decodes to user:password is a credential.
    try:
        decoded = binascii.a2b_base64(match.group(3), strict_mode=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    if b":" not in decoded:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def _field(match: re.Match[str]) -> str:
    value = match.group(4)
    if REDACTED in value:
        return match.group(0)
    quote, name = match.group(1), match.group(2)
    around = value[0] if value[0] in "\"'" else ""
    return f"{quote}{name}{quote}{match.group(3)}{around}{REDACTED}{around}"


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (``api_key``, ``accessToken``)."""
    words = [word for word in _WORDS.split(name) if word]
    return bool(words) and (
        words[-1].lower() in _SECRET_WORDS or "".join(words[-2:]).lower() == "apikey"
    )


def redact(value: Any, *, secret: bool = False) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with its secrets replaced.

    A string under a secret-named key is replaced whole; any other string has its
    secret-shaped parts replaced. Numbers, booleans and None are kept, whatever their key.
    """
    if isinstance(value, dict):
        return {k: redact(v, secret=secret or is_secret_name(str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secret=secret) for v in value]
    if isinstance(value, str):
        if secret and value:
            return REDACTED
        return redact_text(value)
    if isinstance(value, bytes | bytearray) and secret:
        return REDACTED
    return value


class _Redactor(logging.Filter):
    """Redacts each record's message (and traceback) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's to report, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


_REDACTOR = _Redactor()


def redacting_logger(name: str) -> logging.Logger:
    """The logger ``name``, with respflow's redaction on everything logged through it."""
    logger = logging.getLogger(name)
    if _REDACTOR not in logger.filters:
        logger.addFilter(_REDACTOR)
    return logger
