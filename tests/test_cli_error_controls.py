"""The command line's error line shows a server's control characters, it does not send them.

An API error message is network input, and the one line on stderr prints it: an ESC, CSI
or OSC sequence in it would drive the user's terminal (retitle it, write its clipboard,
erase the line). The line uses the pretty output's rule: controls show as ``\\xNN``.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import resources

import anyio
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from respflow import RespflowError
from respflow._cli.main import _one_line
from respflow.testing import MockServer, Recording

CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SAMPLE = Recording.from_bytes(
    resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
)
HOSTILE = "bad \x1b]0;pwned\x07 input\x1b[2K\x9b1m end"

messages = st.lists(
    st.one_of(
        st.sampled_from(["\x1b", "\x07", "\x9b", "\x00", "\x7f", "\n", "\r", "\t", "\x85"]),
        st.sampled_from(["%1b", "%0a", "token=", "sk-", "a", "]", " "]),
        st.characters(),
    ),
    max_size=40,
).map("".join)


@given(messages)
@example(HOSTILE)
@example("token=%1b%5d0;x%07abcdefgh")  # redaction decodes percent escapes it looks into
def test_an_error_line_holds_no_control_character_and_no_line_break(message: str) -> None:
    for error in (RespflowError(message), ValueError(message)):
        line = _one_line("stream", ExceptionGroup("g", [error]))
        assert not CONTROLS.search(line)
        assert len(line.splitlines()) == 1
        assert line.startswith("respflow stream:")


def test_the_controls_show_as_escapes_and_the_rest_as_it_came() -> None:
    line = _one_line("stream", RespflowError("HTTP 400: " + HOSTILE))
    assert line == ("respflow stream: HTTP 400: bad \\x1b]0;pwned\\x07 input\\x1b[2K\\x9b1m end")


@pytest.mark.anyio
async def test_a_servers_error_message_reaches_stderr_escaped(anyio_backend: str) -> None:
    async with MockServer(SAMPLE) as mock:
        mock.fail_next(400, message=HOSTILE, times=5)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
        env.update(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY=mock.openai_api_key)
        done = await anyio.run_process(
            [sys.executable, "-m", "respflow", "stream", "--model", "m", "hi"],
            env=env,
            check=False,
        )
    stderr = done.stderr.decode()
    assert done.returncode == 1
    assert not CONTROLS.search(stderr)
    assert "HTTP 400: bad \\x1b]0;pwned\\x07 input\\x1b[2K\\x9b1m end" in stderr
