"""Secrets in percent-encoded text: a URL inside a URL, a form body, a logged query.

Encoded, a key's shape hides: ``%20sk-proj-...`` glues it to the escape before it,
``Bearer%20...`` and ``Bearer+...`` have no space, ``token%3D...`` no ``=``. Whatever the
encoding, the secret is gone after redaction (found by drawing each secret of
test_hostile_delivery in quoted text: 171 shapes in 5,000 examples survived).
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from hypothesis import assume, example, given
from hypothesis import strategies as st

from respflow._delivery.redaction import redact, redact_text

from .test_hostile_delivery import _SEPARATORS, _secrets

KEY = "sk-proj-" + "Q" * 24


@given(
    before=st.text(max_size=20),
    secret=_secrets(),
    after=st.text(max_size=20),
    left=_SEPARATORS,
    right=_SEPARATORS,
    plus=st.booleans(),
)
@example("see", (KEY, KEY), "", " ", " ", False)
@example("", ("Bearer " + "T" * 20, "T" * 20), "", " ", " ", True)
def test_a_secret_in_percent_encoded_text_is_gone(
    before: str, secret: tuple[str, str], after: str, left: str, right: str, plus: bool
) -> None:
    shown, hidden = secret
    encode = quote_plus if plus else quote
    text = encode(before + left + shown + right + after, safe="")
    encoded = encode(hidden, safe="")
    assume(encoded in text and hidden not in before + after)
    redacted = redact(text)
    assert encoded not in redacted
    assert hidden not in redacted


def test_text_with_no_secret_keeps_its_encoding() -> None:
    for text in ("https://x/cb?next=%2Fhome%3Fa%3D1", "2+2=4, 100% sure", "q=a+b%20c"):
        assert redact_text(text) == text


def test_an_encoded_url_in_a_url_loses_its_credentials() -> None:
    inner = "https://api.example.com/v1?api-key=" + "K" * 20
    outer = "https://login.example.com/cb?next=" + quote(inner, safe="")
    assert "K" * 20 not in redact_text(outer)
