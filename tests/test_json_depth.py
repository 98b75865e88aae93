"""How deeply a JSON document nests, measured on its bytes, agrees with the document read.

respflow refuses JSON nested deeper than ``wire.MAX_DEPTH`` without building it; the
measure runs on the bytes, where brackets and quotes inside strings (escaped or not, as
code is full of them) must not count.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from respflow._core import wire

# Strings made of what confuses a scan of JSON text: quotes, backslashes, brackets.
_TRICKY = st.text(alphabet=st.sampled_from('"\\[]{}/ax\n\u00e9'), max_size=12)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """How deeply ``value`` nests: a list or an object is one level more than what it holds."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(_JSON, st.booleans(), st.booleans())
def test_the_depth_of_any_document_is_that_of_the_value_it_holds(
    value: Any, ascii_only: bool, spaced: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if spaced else None)
    data = text.encode()
    assert wire._depth(data) == depth(value)
    assert wire._depth(bytearray(data)) == depth(value)


def test_escapes_next_to_quotes_are_told_apart() -> None:
    # a string ending in a backslash, then a bracket outside; an escaped quote then a
    # bracket inside; runs of backslashes of each parity
    backslash, quote = "\\", '"'
    for value in (
        [backslash, ["x"]],
        [quote + "]"],
        [backslash * 2, [[]]],
        [backslash + quote + "[", {backslash: [backslash * 3 + quote]}],
    ):
        assert wire._depth(json.dumps(value).encode()) == depth(value)
