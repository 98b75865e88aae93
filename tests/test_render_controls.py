"""The terminal renderer shows a stream's control characters, it does not send them.

The text it prints is the model's, or what the model's code printed from files and pages
anyone may have written: an ESC, CSI or OSC sequence in it (``\\x1b]52;c;...`` writes the
clipboard, ``\\x1b]0;...`` the window title, ``\\x1b[2K`` erases a line) would drive the
reader's terminal. Tab, LF and CR pass; every other control shows as ``\\xNN``.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow._cli.render import _STYLES, PrettyRenderer
from respflow.testing import StreamBuilder, to_sse

CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
OWN_STYLES = re.compile("|".join(map(re.escape, [*_STYLES.values(), "\x1b[0m"])))

texts = st.text(
    alphabet=st.sampled_from(["a", " ", "\n", "\r", "\t", "\x1b", "\x07", "\x9b", "\x00", "]"]),
    max_size=30,
)


def rendered(text: str, *, color: bool) -> str:
    builder = (
        StreamBuilder()
        .reasoning(text)
        .code_call(text, logs=text)
        .shell_call([text], outputs=[(text, text, 0)])
        .message(text, annotations=[{"type": "file_citation", "file_id": text, "index": 0}])
        .item({"id": "x", "type": text, "status": text})
    )
    out: list[str] = []
    renderer = PrettyRenderer(out.append, color=color)
    for event in respflow.replay(to_sse(builder.events())):
        renderer.render(event)
    return "".join(out)


@given(texts, st.booleans())
@example("\x1b]52;c;ZWNobyBwd25lZA==\x07", False)
@example("\x1b]0;owned\x07\x1b[2K\x9b31m", True)
def test_no_control_character_from_a_stream_reaches_the_terminal(text: str, color: bool) -> None:
    shown = rendered(text, color=color)
    assert CONTROLS.search(OWN_STYLES.sub("", shown)) is None
    if "\x1b" in text:
        assert "\\x1b" in shown


def test_text_without_controls_is_shown_as_it_is() -> None:
    text = "tab\there, lines\nand a\rprogress bar"
    assert text.replace("\n", "") in rendered(text, color=False).replace("\n", "")
