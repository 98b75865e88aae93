"""Safe file names from untrusted ones: a name from the network becomes one harmless component."""

from __future__ import annotations

import unicodedata

__all__ = ["numbered", "safe_filename"]

_ALLOWED_PUNCTUATION = frozenset(" -_.,+=@()[]{}~'!#$%&")
# Names Windows reserves in any directory, whatever extensions follow them.
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
    spaces go; a name that starts with a reserved device name (``CON.tar.gz``, ``NUL .txt``)
    gets a ``_`` prefix; the result is at most ``max_bytes`` of UTF-8, keeping the
    extension. Never empty, never ``.`` or ``..``; a safe name stays as it is.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(_keep(ch) for ch in text)
    text = text.lstrip(". ").rstrip(". ")
    if not text.strip("_"):
        text = fallback
    if _is_device(text):
        text = "_" + text
    text = _shorten(text, max_bytes)
    if _is_device(text):  # only a tiny max_bytes can cut a name down to a device
        text = _shorten("_" + text, max_bytes)
    return text


def numbered(name: str, n: int, *, max_bytes: int = _MAX_BYTES) -> str:
    """``name`` with `` (n)`` before its extension, the name shortened so the counter fits.

    For a second file that wants a name already taken: the counter is what tells the two
    apart, so it is never the part that is cut.
    """
    counter = f" ({n})"
    ext = _extension(name)
    stem = name[: len(name) - len(ext)]
    room = max_bytes - len(counter.encode()) - len(ext.encode())
    return _truncate(stem, room) + counter + ext


def _is_device(text: str) -> bool:
    # Windows ignores what follows the first dot, and spaces before it, when it looks
    # for a device: "NUL .txt" and "con.tar.gz" are devices too.
    return text.split(".", 1)[0].rstrip(" ").lower() in _RESERVED


def _extension(name: str) -> str:
    """The ``.ext`` a shortened name keeps: a short one after a non-empty stem, else none."""
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and len(suffix.encode()) <= _MAX_SUFFIX_BYTES:
        return dot + suffix
    return ""


def _shorten(text: str, max_bytes: int) -> str:
    if len(text.encode()) <= max_bytes:
        return text
    ext = _extension(text)
    stem = text[: len(text) - len(ext)]
    return _truncate(stem, max_bytes - len(ext.encode())) + ext


def _keep(ch: str) -> str:
    if ch.isalnum() or ch in _ALLOWED_PUNCTUATION:
        return ch
    return "_"


def _truncate(text: str, max_bytes: int) -> str:
    data = text.encode()[: max(max_bytes, 0)]
    return data.decode(errors="ignore").rstrip(". ") or "file"
