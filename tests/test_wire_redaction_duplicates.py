"""A response object written twice in one frame: the secret in either copy is redacted.

JSON readers keep the last of duplicate keys, so a frame whose first ``response`` held a
pasted key and whose second did not was judged from the second alone, and the key went
into the recording as it came.
"""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow._delivery.wire_redaction import redact_frame

SECRET = "sk-proj-" + "A" * 24

plain = st.fixed_dictionaries(
    {"id": st.just("resp_1")},
    optional={
        "instructions": st.text(alphabet="abc xyz\u00e9", max_size=20),
        "metadata": st.dictionaries(
            st.sampled_from(["team", "city"]), st.text(alphabet="abc", max_size=8)
        ),
    },
)


def _frame(first: dict[str, object], second: dict[str, object]) -> bytes:
    data = (
        '{"type":"response.created","response":'
        + json.dumps(first)
        + ',"response":'
        + json.dumps(second)
        + "}"
    )
    return b"event: response.created\ndata: " + data.encode() + b"\n\n"


@given(plain, plain, st.booleans())
@example({"id": "resp_1"}, {"id": "resp_1"}, True)
def test_a_secret_in_either_copy_of_a_response_is_redacted(
    one: dict[str, object], other: dict[str, object], secret_first: bool
) -> None:
    holder = {**one, "instructions": f"use {SECRET}"}
    first, second = (holder, other) if secret_first else (other, holder)
    redacted, rid = redact_frame(_frame(first, second))
    assert SECRET.encode() not in redacted
    assert rid == "resp_1"
    # The frame still reads as the same event, but the secret.
    clean_first, clean_second = (
        ({**holder, "instructions": "use [redacted]"}, other)
        if secret_first
        else (other, {**holder, "instructions": "use [redacted]"})
    )
    assert list(respflow.replay(redacted)) == list(
        respflow.replay(_frame(clean_first, clean_second))
    )
