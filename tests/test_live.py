"""respflow.stream / resume / cancel against the mock Responses API over real loopback HTTP.

The openai SDK is the transport, as in production: these tests prove what goes over the
wire (paths, credentials, include) and what comes back (each event once, typed errors).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
import openai
import pytest

import respflow
from respflow import (
    AuthenticationFailed,
    ConnectionFailed,
    NotFound,
    RateLimited,
    Reconnect,
    ResumeExpired,
    ServerError,
    StreamError,
    StreamTruncated,
)
from respflow.testing import MockServer, Recording, StreamBuilder

pytestmark = pytest.mark.anyio

SAMPLE_BYTES = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
SAMPLE = Recording.from_bytes(SAMPLE_BYTES)
UNCUT = list(respflow.replay(SAMPLE_BYTES))
UNCUT_BACKGROUND = list(respflow.replay(SAMPLE.in_background().to_sse()))
CI_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
FAST = Reconnect(attempts=3, initial_delay=0.0)
OPENAI_KEY = "sk-mock-openai"
AZURE_KEY = "mock-azure-key"


@pytest.fixture
async def mock(anyio_backend: str) -> AsyncIterator[MockServer]:
    async with MockServer(SAMPLE) as server:
        yield server


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0
    ) as sdk:
        yield sdk


async def _collect(events: respflow.EventStream) -> list[respflow.Event]:
    async with events:
        return [event async for event in events]


def _no_secret_in(text: str) -> None:
    assert OPENAI_KEY not in text
    assert AZURE_KEY not in text


# -- resume --------------------------------------------------------------------------------


async def test_a_background_stream_cut_every_k_events_resumes_to_the_uncut_events(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    # Every k, exhaustively: each connection carries k events, then drops.
    for k in range(1, len(SAMPLE.events) + 1):
        mock.cut_after, mock.cuts = k, 0
        got = await _collect(
            respflow.stream(client, model="gpt-5", input="dice", background=True, reconnect=FAST)
        )
        assert got == UNCUT_BACKGROUND, f"k={k}"
        assert mock.cuts == (len(SAMPLE.events) - 1) // k
    resumes = [r for r in mock.requests if r.method == "GET"]
    assert resumes
    assert all(r.query["stream"] == ["true"] for r in resumes)
    assert all(int(r.query["starting_after"][0]) >= 0 for r in resumes)


async def test_a_server_that_replays_from_the_start_still_yields_each_event_once(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.honour_starting_after = False
    mock.cut_after, mock.max_cuts = 7, 1
    events = respflow.stream(client, model="gpt-5", input="dice", background=True)
    got = await _collect(events)
    assert got == UNCUT_BACKGROUND
    assert events.assembler.duplicates == 7


async def test_a_foreground_stream_that_drops_ends_truncated_and_says_why(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.cut_after = 9
    got = await _collect(respflow.stream(client, model="gpt-5", input="dice"))
    end = got[-1]
    assert isinstance(end, StreamTruncated)
    assert end.last_sequence_number == 8
    assert "only background responses can be resumed" in end.message
    assert any(isinstance(e, StreamError) and e.fatal for e in got)
    # What arrived before the drop is all there, unchanged.
    arrived = [e for e in UNCUT if e.sequence_number <= 8]
    assert got[: len(arrived)] == arrived
    assert [r.method for r in mock.requests] == ["POST"]


async def test_resume_takes_over_a_response_after_a_sequence_number(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.cut_after, mock.max_cuts = 5, 1
    first = respflow.stream(
        client, model="gpt-5", input="dice", background=True, reconnect=Reconnect(attempts=0)
    )
    got = await _collect(first)
    assert isinstance(got[-1], StreamTruncated)
    rid, after = first.response_id, first.last_sequence_number
    assert (rid, after) == (SAMPLE.response_id, 4)
    rest = await _collect(respflow.resume(client, rid, starting_after=after))
    assert rest[0].sequence_number == 5
    assert not [e for e in rest if isinstance(e, StreamError)]  # items added before 5 are fine
    assert rest[-1] == UNCUT_BACKGROUND[-1]
    assert mock.requests[-1].query == {"stream": ["true"], "starting_after": ["4"]}


async def test_resume_of_an_unknown_or_foreground_response_raises_resume_expired(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    await _collect(respflow.stream(client, model="gpt-5", input="dice"))  # not background
    for rid in (SAMPLE.response_id, "resp_never"):
        with pytest.raises(ResumeExpired, match="only responses created with background=True"):
            await _collect(respflow.resume(client, rid, starting_after=3))


async def test_a_response_that_expires_mid_stream_ends_with_resume_expired(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.cut_after, mock.max_cuts = 6, 1
    got: list[respflow.Event] = []
    async with respflow.stream(client, model="gpt-5", input="x", background=True) as events:
        async for event in events:
            if not got:
                mock.fail_next(404, message="Response with id 'resp_sample_dice' not found.")
            got.append(event)
    errors = [e for e in got if isinstance(e, StreamError)]
    assert [e.code for e in errors] == ["resume_expired"]
    assert "not found" in errors[0].message
    assert isinstance(got[-1], StreamTruncated)
    arrived = [e for e in UNCUT_BACKGROUND if e.sequence_number <= 5]
    assert got[: len(arrived)] == arrived


async def test_resume_gives_up_after_the_attempts_bring_nothing(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.cut_after = 4
    got: list[respflow.Event] = []
    async with respflow.stream(
        client, model="gpt-5", input="x", background=True, reconnect=Reconnect(attempts=2)
    ) as events:
        async for event in events:
            if not got:
                mock.cut_after = 0  # from now on every connection drops at once
            got.append(event)
    assert [e.code for e in got if isinstance(e, StreamError)] == ["resume_failed"]
    end = got[-1]
    assert isinstance(end, StreamTruncated)
    assert f"starting_after={end.last_sequence_number}" in end.message


# -- the request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "include", "opt_out", "sent"),
    [
        (None, None, False, None),
        ([{"type": "function", "name": "f", "parameters": {}}], None, False, None),
        (CI_TOOLS, None, False, ["code_interpreter_call.outputs"]),
        (
            CI_TOOLS,
            ["reasoning.encrypted_content"],
            False,
            ["reasoning.encrypted_content", "code_interpreter_call.outputs"],
        ),
        (CI_TOOLS, ["code_interpreter_call.outputs"], False, ["code_interpreter_call.outputs"]),
        (CI_TOOLS, None, True, None),
    ],
)
async def test_include_is_added_exactly_when_code_interpreter_is_a_tool(
    mock: MockServer,
    client: openai.AsyncOpenAI,
    tools: list[dict[str, Any]] | None,
    include: list[str] | None,
    opt_out: bool,
    sent: list[str] | None,
) -> None:
    kwargs: dict[str, Any] = {"model": "gpt-5", "input": "x"}
    if tools is not None:
        kwargs["tools"] = tools
    if include is not None:
        kwargs["include"] = include
    before = copy.deepcopy(kwargs)
    await _collect(respflow.stream(client, include_code_outputs=not opt_out, **kwargs))
    body = mock.requests[-1].body
    assert body.get("include") == sent
    assert body["stream"] is True
    assert kwargs == before  # the caller's arguments are untouched


async def test_stream_false_is_refused(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(respflow.UsageError, match="always streams"):
        respflow.stream(client, model="m", input="x", stream=False)


# -- HTTP errors ---------------------------------------------------------------------------


async def test_a_wrong_key_is_authentication_failed_with_the_api_message(
    mock: MockServer,
) -> None:
    async with openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-wrong") as sdk:
        with pytest.raises(AuthenticationFailed) as caught:
            await _collect(respflow.stream(sdk, model="m", input="x"))
    err = caught.value
    assert err.status_code == 401
    assert err.api_message == "Incorrect API key provided."
    assert err.request_id is not None
    assert err.request_id in str(err)
    assert "sk-wrong" not in str(err)


async def test_429_is_rate_limited_with_retry_after(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.fail_next(429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await _collect(respflow.stream(client, model="m", input="x"))
    assert caught.value.retry_after == 7
    assert "wait 7 s" in str(caught.value)
    _no_secret_in(str(caught.value))


async def test_5xx_is_a_server_error(mock: MockServer, client: openai.AsyncOpenAI) -> None:
    mock.fail_next(503, message="The engine is currently overloaded.")
    with pytest.raises(ServerError, match="HTTP 503: The engine is currently overloaded"):
        await _collect(respflow.stream(client, model="m", input="x"))


async def test_retries_are_the_clients_own(mock: MockServer) -> None:
    mock.fail_next(429, retry_after=0.01)
    mock.fail_next(500)
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=2
    ) as sdk:
        got = await _collect(respflow.stream(sdk, model="m", input="x"))
    assert got == UNCUT
    assert [r.status for r in mock.requests] == [429, 500, 200]


async def test_no_server_is_connection_failed(anyio_backend: str) -> None:
    with socket_closed_port() as port:
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=OPENAI_KEY, max_retries=0
        ) as sdk:
            with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}") as caught:
                await _collect(respflow.stream(sdk, model="m", input="x"))
    _no_secret_in(str(caught.value))


def socket_closed_port() -> Any:
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed() -> Any:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        yield port

    return closed()


# -- OpenAI and Azure ----------------------------------------------------------------------


async def test_openai_and_azure_each_get_their_own_path_and_credential(
    mock: MockServer,
) -> None:
    mock.azure_ad_token = "entra-token"
    clients = {
        "openai": openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY),
        "azure-v1": openai.AsyncAzureOpenAI(
            base_url=mock.azure_base_url, api_key=AZURE_KEY, api_version="preview"
        ),
        "azure-endpoint": openai.AsyncAzureOpenAI(
            azure_endpoint=mock.url, api_key=AZURE_KEY, api_version="2025-04-01-preview"
        ),
        "azure-entra": openai.AsyncAzureOpenAI(
            base_url=mock.azure_base_url, azure_ad_token="entra-token", api_version="preview"
        ),
    }
    seen = {}
    for name, sdk in clients.items():
        async with sdk:
            assert await _collect(respflow.stream(sdk, model="gpt-5", input="x")) == UNCUT
            req = mock.requests[-1]
            seen[name] = (req.path, req.api, req.credential, req.auth_header)
    assert seen == {
        "openai": ("/v1/responses", "openai", "openai_api_key", "authorization"),
        "azure-v1": ("/openai/v1/responses", "azure", "azure_api_key", "api-key"),
        "azure-endpoint": ("/openai/responses", "azure", "azure_api_key", "api-key"),
        "azure-entra": ("/openai/v1/responses", "azure", "azure_ad_token", "authorization"),
    }


@pytest.mark.parametrize(
    ("where", "key"), [("openai_base_url", AZURE_KEY), ("azure_base_url", OPENAI_KEY)]
)
async def test_a_credential_sent_to_the_other_api_is_refused(
    mock: MockServer, where: str, key: str
) -> None:
    async with openai.AsyncOpenAI(base_url=getattr(mock, where), api_key=key, max_retries=0) as sdk:
        with pytest.raises(AuthenticationFailed):
            await _collect(respflow.stream(sdk, model="m", input="x"))
    assert mock.requests[-1].credential is None


async def test_an_azure_background_stream_resumes_on_the_azure_path(mock: MockServer) -> None:
    mock.cut_after, mock.max_cuts = 10, 1
    async with openai.AsyncAzureOpenAI(
        base_url=mock.azure_base_url, api_key=AZURE_KEY, api_version="preview"
    ) as sdk:
        got = await _collect(respflow.stream(sdk, model="m", input="x", background=True))
    assert got == UNCUT_BACKGROUND
    resumed = mock.requests[-1]
    assert (resumed.method, resumed.path) == ("GET", f"/openai/v1/responses/{SAMPLE.response_id}")
    assert resumed.credential == "azure_api_key"


# -- closing and cancelling ----------------------------------------------------------------


async def test_leaving_the_stream_early_closes_the_connection(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.pace = 0.01
    async with respflow.stream(client, model="m", input="x") as events:
        async for _ in events:
            break
    with anyio.fail_after(5):
        while mock.disconnects == 0:
            await anyio.sleep(0.01)
    assert mock.disconnects == 1


async def test_cancel_a_background_response(mock: MockServer, client: openai.AsyncOpenAI) -> None:
    events = respflow.stream(client, model="m", input="x", background=True)
    async with events:
        async for _ in events:
            break
    cancelled = await respflow.cancel(client, events.response_id)
    assert cancelled["status"] == "cancelled"
    assert mock.requests[-1].path == f"/v1/responses/{SAMPLE.response_id}/cancel"
    with pytest.raises(NotFound, match="resp_nope"):
        await respflow.cancel(client, "resp_nope")


async def test_the_sync_client_is_refused_saying_which_to_pass(mock: MockServer) -> None:
    sync = openai.OpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY)
    says = "needs the SDK's async client: openai.AsyncOpenAI"
    with pytest.raises(respflow.UsageError, match=says):
        respflow.stream(sync, model="m", input="x")
    with pytest.raises(respflow.UsageError, match=says):
        respflow.resume(sync, SAMPLE.response_id, starting_after=3)
    with pytest.raises(respflow.UsageError, match=says):
        await respflow.cancel(sync, SAMPLE.response_id)
    with pytest.raises(respflow.UsageError, match=says):
        respflow.FileFetcher(sync)
    async with respflow.Runner(sync, respflow.MemoryBroker()) as runner:
        with pytest.raises(respflow.UsageError, match=says):
            await runner.start(model="m", input="x")
    assert mock.requests == []


# -- other sources -------------------------------------------------------------------------


async def test_an_sdk_stream_the_user_opened_gives_the_same_events(
    client: openai.AsyncOpenAI,
) -> None:
    sdk_stream = await client.responses.create(model="m", input="x", stream=True)
    assert await _collect(respflow.from_sdk_stream(sdk_stream)) == UNCUT


async def test_an_sdk_stream_already_started_gives_the_rest(client: openai.AsyncOpenAI) -> None:
    sdk_stream = await client.responses.create(model="m", input="x", stream=True)
    first = await sdk_stream.__anext__()
    assert first.type == "response.created"
    got = await _collect(respflow.from_sdk_stream(sdk_stream))
    assert got[-1] == UNCUT[-1]
    assert got[0].sequence_number == 1


async def test_an_sdk_stream_read_past_its_start_gives_the_rest_under_its_response(
    client: openai.AsyncOpenAI,
) -> None:
    sdk_stream = await client.responses.create(model="m", input="x", stream=True)
    read = [await sdk_stream.__anext__() for _ in range(12)]
    got = await _collect(
        respflow.from_sdk_stream(
            sdk_stream,
            response_id=read[0].response.id,
            starting_after=read[-1].sequence_number,
        )
    )
    assert {e.response_id for e in got} == {SAMPLE.response_id}
    assert not [e for e in got if isinstance(e, (respflow.StreamGap, respflow.StreamError))]
    assert isinstance(got[-1], respflow.ResponseCompleted)
    answer = [e for e in UNCUT if isinstance(e, respflow.MessageCompleted)]
    assert [e for e in got if isinstance(e, respflow.MessageCompleted)] == answer


async def test_a_non_streaming_background_request_is_stored_and_cancellable(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    queued = await client.responses.create(model="m", input="x", background=True)
    assert queued.status == "queued"
    done = await client.responses.retrieve(queued.id)
    assert done.status == "completed"
    cancelled = await respflow.cancel(client, queued.id)
    assert cancelled["status"] == "cancelled"
    assert (await client.responses.retrieve(queued.id)).status == "cancelled"


async def test_a_response_json_recording_is_served_as_a_stream(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    response = StreamBuilder().code_call("print(2)", logs="2\n").message("two").response()
    mock.recording = Recording.from_response(response)
    got = await _collect(respflow.stream(client, model="m", input="x"))
    direct = list(respflow.Assembler().feed_response(response))
    assert [e.type for e in got if e.type.endswith("completed")] == [
        e.type for e in direct if e.type.endswith("completed")
    ]


async def test_a_finished_sdk_response_object_gives_its_events(
    client: openai.AsyncOpenAI,
) -> None:
    response = await client.responses.create(model="m", input="x")  # not streamed
    got = respflow.from_response(response)
    assert got == respflow.from_response(response.to_dict(mode="json"))
    assert got[-1].type == "response.completed"
    assert [e.type for e in got if e.type.endswith(".completed")][:-1] == [
        e.type for e in UNCUT if e.type.endswith(".completed")
    ][:-1]


async def test_a_rate_limited_resume_waits_and_goes_on(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.cut_after, mock.max_cuts = 5, 1
    got: list[respflow.Event] = []
    async with respflow.stream(client, model="m", input="x", background=True) as events:
        async for event in events:
            if not got:
                mock.fail_next(429, retry_after=0.05)  # the resume's first try
            got.append(event)
    assert got == UNCUT_BACKGROUND
    assert [r.status for r in mock.requests if r.method == "GET"] == [429, 200]


async def test_leaving_an_sdk_stream_early_closes_it(
    mock: MockServer, client: openai.AsyncOpenAI
) -> None:
    mock.pace = 0.01
    sdk_stream = await client.responses.create(model="m", input="x", stream=True)
    async with respflow.from_sdk_stream(sdk_stream) as events:
        async for _ in events:
            break
    with anyio.fail_after(5):
        while mock.disconnects == 0:
            await anyio.sleep(0.01)
