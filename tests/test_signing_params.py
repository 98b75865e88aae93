"""A capability URL's ``exp`` and ``sig`` come from whoever holds the URL: any strings at
all give a verdict, never an exception (``hmac.compare_digest`` raises TypeError for a str
that is not ASCII, which was a 500 for ``?sig=é``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import httpx2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow import MemoryBroker
from respflow._server.signing import Signer, events_grant
from respflow.testing import LoopbackServer

SECRET = "a-secret-of-32-bytes-for-tests!!"
NOW = 1_800_000_000.0
GRANT = events_grant("resp_1")

signer = Signer(SECRET, clock=lambda: NOW)
VALID = dict(parse_qsl(signer.query(GRANT)))
params = st.text(
    alphabet=st.sampled_from([*"0123456789", "٣", "¹", "é", "😀", " ", "-", "+", "_", "=", "A"]),
    max_size=16,
)


@given(params, params)
@example(VALID["exp"], "é")
@example("١٨٠٠٠٨٦٤٠٠", VALID["sig"])
@example(VALID["exp"], VALID["sig"] + "é")
def test_any_exp_and_sig_give_a_verdict_and_only_the_signed_ones_pass(exp: str, sig: str) -> None:
    verdict = signer.check(GRANT, {"exp": exp, "sig": sig})
    assert verdict in ("ok", "missing", "invalid", "expired")
    assert (verdict == "ok") == (exp == VALID["exp"] and sig == VALID["sig"])


def test_the_signed_url_passes() -> None:
    assert signer.check(GRANT, VALID) == "ok"


@pytest.fixture
async def served(anyio_backend: str) -> AsyncIterator[httpx2.AsyncClient]:
    app = respflow.app(MemoryBroker(), secret=SECRET)
    async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
        yield http


@pytest.mark.anyio
async def test_a_signature_that_is_not_ascii_is_refused_not_an_error(
    served: httpx2.AsyncClient,
) -> None:
    for query in ({"exp": "9999999999", "sig": "é"}, {"exp": "٣٣٣٣", "sig": "abc"}):
        reply = await served.get("/responses/resp_1/events", params=query)
        assert reply.status_code == 403
        assert reply.json()["error"]["code"] == "signature_invalid"
