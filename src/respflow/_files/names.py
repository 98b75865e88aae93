"""Safe file names from untrusted ones: a name from the network becomes one harmless component."""

from __future__ import annotations

import unicodedata

__all__ = ["safe_filename"]

_ALLOWED_PUNCTUATION = frozenset(" -_.,+=@()[]{}~'!#$%&")
# Names Windows reserves in any directory, with or without an extension.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
    | {f"com{i}" for i in "123456789¹²³"}
    | {f"lpt{i}" for i in "123456789¹²³"}
)
_MAX_BYTES = 200
_MAX_SUFFIX_BYTES = 24


def safe_filename(name: str | None, *, fallback: str = "file", max_bytes: int = _MAX_BYTES) -> str:
    """One path component that is safe on Linux, macOS and Windows, from any string.

    Only the last component of ``name`` is kept (after NFKC folding, so look-alike slashes
    count as slashes); control, format and separator characters and anything outside
    letters, digits and plain punctuation become ``_``; leading dots and trailing dots and
    spaces go; reserved device names get a ``_`` prefix; the result is at most
    ``max_bytes`` of UTF-8, keeping the extension. Never empty, never ``.`` or ``..``.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(_keep(ch) for ch in text)
    text = text.lstrip(". ").rstrip(". ")
    if not text.strip("_"):
        text = fallback
    stem, dot, suffix = text.rpartition(".")
    if not dot:
        stem, suffix = text, ""
    if stem.lower() in _RESERVED or text.lower() in _RESERVED:
        text = "_" + text
        stem = "_" + stem
    if len(text.encode()) > max_bytes:
        ext = ("." + suffix) if dot and len(suffix.encode()) <= _MAX_SUFFIX_BYTES else ""
        text = _truncate(stem if ext else text, max_bytes - len(ext.encode())) + ext
    return text


def _keep(ch: str) -> str:
    if ch.isalnum() or ch in _ALLOWED_PUNCTUATION:
        return ch
    return "_"


def _truncate(text: str, max_bytes: int) -> str:
    data = text.encode()[:max_bytes]
    return data.decode(errors="ignore").rstrip(". ") or "file"
