"""Every real recording in ``../shared/fixtures/external/``, served over loopback HTTP.

The SDK transport (``respflow.stream`` through ``openai.AsyncOpenAI``) and the plain
byte path (``respflow.aiter_events`` over an ``httpx2`` response body) must give the same
events, and each response exactly one end, last.
"""

from __future__ import annotations

import httpx2
import openai
import pytest

import respflow
from respflow.testing import MockServer
from respflow.testing import Recording as Served

from .external import ROOT, recordings

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not ROOT.exists(), reason="../shared/fixtures/external absent"),
]

KEY = "sk-mock-openai"


async def test_sdk_and_byte_paths_agree_on_every_recording(anyio_backend: str) -> None:
    found = recordings()
    assert len(found) > 100
    mismatches: list[str] = []
    first = Served.from_bytes(found[0].data)
    async with (
        MockServer(first) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=KEY, max_retries=0) as sdk,
        httpx2.AsyncClient(base_url=mock.openai_base_url) as http,
    ):
        for recording in found:
            mock.recording = Served.from_bytes(recording.data)
            async with respflow.stream(sdk, model="m", input="x") as events:
                via_sdk = [event async for event in events]
            async with http.stream(
                "POST",
                "/responses",
                json={"model": "m", "input": "x", "stream": True},
                headers={"authorization": f"Bearer {KEY}"},
            ) as body:
                via_bytes = [event async for event in respflow.aiter_events(body.aiter_bytes())]
            if via_sdk != via_bytes:
                mismatches.append(recording.source)
            ends = [i for i, e in enumerate(via_sdk) if isinstance(e, respflow.END_TYPES)]
            if not ends or ends[-1] != len(via_sdk) - 1:
                mismatches.append(f"{recording.source}: the last event is not an end")
    assert mismatches == []
