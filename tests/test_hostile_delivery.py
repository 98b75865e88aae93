"""Delivery under hostile conditions: sinks that hang, errors that must keep their type,
secrets that must not reach a log, readers the hub must not lose, ids a URL cannot hold."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from importlib import resources

import anyio
import httpx2
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import respflow
from respflow import (
    AuthenticationFailed,
    CallbackSink,
    FileFetcher,
    Hub,
    Lagged,
    LogSink,
    Pipeline,
    Policy,
    StreamDropped,
    StreamError,
    StreamTruncated,
    TooOld,
    attach,
    deliver,
)
from respflow._delivery.sinks import redact
from respflow.testing import LoopbackServer, MemorySink, MockServer, Recording, StreamBuilder

pytestmark = pytest.mark.anyio

SAMPLE_BYTES = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
SAMPLE = Recording.from_bytes(SAMPLE_BYTES)
EVENTS = list(respflow.replay(SAMPLE_BYTES))
# Generous: the fixed code returns within a fraction of it; the old code never returned.
NEVER = 20


async def _events(pause: float = 0.0) -> AsyncIterator[respflow.Event]:
    for event in EVENTS:
        if pause:
            await anyio.sleep(pause)
        yield event


class StuckSink(MemorySink):
    """A consumer that stops taking events for good after ``after`` of them, as a
    websocket whose peer stopped reading does: its ``send`` never returns."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    async def send(self, event: respflow.Event) -> None:
        if len(self.events) >= self.after:
            await anyio.sleep_forever()
        await super().send(event)


# -- 11: a sink stuck in send() ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["drop_oldest", "disconnect"])
async def test_a_stuck_sink_that_never_holds_the_stream_back_does_not_hold_up_its_end(
    anyio_backend: str, policy: Policy
) -> None:
    good, stuck = MemorySink(), StuckSink(after=3)
    with anyio.fail_after(NEVER):
        async with Pipeline(
            good,
            attach(stuck, policy=policy, buffer=4),
            close_timeout=0.2,
        ) as pipeline:
            for event in EVENTS:
                await pipeline.publish(event)
                await anyio.sleep(0)  # the stuck sink takes its first events, then hangs
    assert good.events == EVENTS
    assert stuck.closed == 1
    assert len(stuck.events) <= 3
    [(name, why)] = pipeline.failures
    assert name == "StuckSink"
    assert "took no event" in str(why)


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "disconnect"])
async def test_a_stuck_sink_is_closed_when_the_pipeline_is_cancelled(
    anyio_backend: str, policy: Policy
) -> None:
    good, stuck = MemorySink(), StuckSink(after=2)
    with anyio.fail_after(NEVER), anyio.CancelScope() as scope:
        async with Pipeline(
            good,
            attach(stuck, policy=policy, buffer=64),
            close_timeout=0.2,
        ) as pipeline:
            for event in EVENTS:
                await pipeline.publish(event)
                if len(good.events) >= 10:
                    scope.cancel()
                await anyio.sleep(0)
    assert stuck.closed == 1  # its notice could not get through; it is closed all the same
    assert good.closed == 1
    assert isinstance(good.events[-1], StreamTruncated)


sink_kinds = st.lists(
    st.tuples(
        st.sampled_from(["drop_oldest", "disconnect"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=60)),  # stuck after n
        st.integers(min_value=1, max_value=8),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kinds=sink_kinds, cancel_after=st.one_of(st.none(), st.integers(0, len(EVENTS) - 1)))
@example(kinds=[("drop_oldest", None, 1)], cancel_after=len(EVENTS) - 1)
async def test_every_sink_is_closed_exactly_once_whatever_it_does(
    anyio_backend: str, kinds: list[tuple[str, int | None, int]], cancel_after: int | None
) -> None:
    sinks = [MemorySink() if stuck is None else StuckSink(stuck) for _, stuck, _ in kinds]
    block = MemorySink()  # a sink that keeps up, beside them
    attached = [
        attach(sink, policy=policy, buffer=buffer)  # type: ignore[arg-type]
        for sink, (policy, _, buffer) in zip(sinks, kinds, strict=True)
    ]
    with anyio.fail_after(NEVER), anyio.CancelScope() as scope:
        async with Pipeline(block, *attached, close_timeout=0.05) as pipeline:
            for published, event in enumerate(EVENTS):
                if published == cancel_after:
                    scope.cancel()
                await pipeline.publish(event)
                await anyio.sleep(0)
    for sink in [block, *sinks]:
        assert sink.closed == 1
        cursors = [respflow.parse_cursor(e.cursor) for e in sink.events]
        assert cursors == sorted(cursors)
    ends = [e for e in block.events if isinstance(e, respflow.END_TYPES)]
    assert ends == [block.events[-1]]  # exactly one end, and it is the last event
    if cancel_after is None:
        assert block.events == EVENTS
    elif cancel_after < len(EVENTS) - 1:
        assert isinstance(block.events[-1], StreamTruncated)
    else:
        # Cancelled while the response's own end was being published: whether it got
        # through first is the scheduler's to say; if it did, nothing is truncated.
        assert isinstance(block.events[-1], StreamTruncated) or block.events == EVENTS
    for sink, (policy, stuck, _) in zip(sinks, kinds, strict=True):
        if stuck is None and cancel_after is None and policy == "drop_oldest":
            got = [e for e in sink.events if not isinstance(e, StreamDropped | StreamError)]
            assert got[-1] == EVENTS[-1]  # a sink that keeps taking gets the end


# -- 12: typed errors before the first event ---------------------------------------------


async def test_a_wrong_key_through_deliver_is_authentication_failed_itself(
    anyio_backend: str,
) -> None:
    async with (
        MockServer(SAMPLE) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-wrong", max_retries=0) as sdk,
    ):
        sink = MemorySink()
        with pytest.raises(AuthenticationFailed, match="HTTP 401"):
            await deliver(respflow.stream(sdk, model="m", input="x"), sink)
        assert sink.events == []
        assert sink.closed == 1
        # Through a processor that runs its own tasks (the file fetcher) too.
        with pytest.raises(AuthenticationFailed, match="HTTP 401"):
            await deliver(
                respflow.stream(sdk, model="m", input="x"), sink, processors=[FileFetcher(sdk)]
            )
        with pytest.raises(respflow.ConnectionFailed):
            async with openai.AsyncOpenAI(
                base_url="http://127.0.0.1:9/v1", api_key="sk-mock-openai", max_retries=0
            ) as nowhere:
                await deliver(respflow.stream(nowhere, model="m", input="x"), MemorySink())


# -- 14: the hub keeps live responses and says when a cursor is too old ------------------

RID = EVENTS[0].response_id


def _as(response_id: str, events: list[respflow.Event] = EVENTS) -> list[respflow.Event]:
    return [
        respflow.decode_event(respflow.encode_event(e).replace(RID.encode(), response_id.encode()))
        for e in events
    ]


async def _read(reader: AsyncIterator[respflow.Event]) -> list[respflow.Event]:
    return [event async for event in reader]


async def test_subscribing_to_unknown_responses_evicts_no_live_one(anyio_backend: str) -> None:
    hub = Hub(max_responses=2)
    got: list[respflow.Event] = []

    async def follow() -> None:
        got.extend(await _read(hub.subscribe(RID)))

    async with anyio.create_task_group() as group:
        await hub.send(EVENTS[0])
        group.start_soon(follow)
        await anyio.sleep(0)
        for n in range(5_000):  # anyone may ask for ids that never come
            hub.subscribe(f"resp_unknown_{n}")
        for event in EVENTS[1:]:
            await hub.send(event)
    assert got == EVENTS  # the live response's reader got its end
    assert hub.responses() == [RID]  # asking for an id stores nothing
    assert await _read(hub.subscribe(RID, after=EVENTS[9].cursor)) == EVENTS[10:]


async def test_a_reader_waiting_for_a_response_gets_it_when_it_comes(anyio_backend: str) -> None:
    hub = Hub(max_responses=1)
    got: list[respflow.Event] = []
    later = "resp_later"

    async def follow() -> None:
        got.extend(await _read(hub.subscribe(later, after=None)))

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        await anyio.sleep(0)
        for event in EVENTS:  # another response comes and goes first
            await hub.send(event)
        for event in _as(later):
            await hub.send(event)
    assert got == _as(later)


async def test_a_live_response_pushed_out_by_newer_ones_tells_its_readers(
    anyio_backend: str,
) -> None:
    hub = Hub(max_responses=1)
    reader = hub.subscribe(RID)
    for event in EVENTS[:10]:
        await hub.send(event)
    for event in _as("resp_newer"):  # a newer response takes the only place
        await hub.send(event)
    with pytest.raises(Lagged, match="reconnect"):
        await _read(reader)  # never a silent end without an end event
    for event in EVENTS[10:]:  # the first response goes on; its start is gone
        await hub.send(event)
    with pytest.raises(TooOld):
        hub.subscribe(RID, after=EVENTS[3].cursor)
    assert await _read(hub.subscribe(RID, after=EVENTS[20].cursor)) == EVENTS[21:]


async def test_a_cursor_older_than_what_the_hub_saw_is_too_old_even_if_it_was_waiting(
    anyio_backend: str,
) -> None:
    hub = Hub()
    reader = hub.subscribe(RID, after=EVENTS[3].cursor)  # the hub has not seen it yet
    for event in EVENTS[10:]:  # it only ever sees the response from the middle
        await hub.send(event)
    with pytest.raises(TooOld):
        await _read(reader)
    # From the start of what it has, or from a cursor it has: exactly the rest.
    assert await _read(hub.subscribe(RID)) == EVENTS[10:]
    assert await _read(hub.subscribe(RID, after=EVENTS[10].cursor)) == EVENTS[11:]


async def test_a_browser_waiting_with_an_old_cursor_hears_it_is_too_old(
    anyio_backend: str,
) -> None:
    hub = Hub()
    app = respflow.events_app(hub, authorize=lambda request, rid: True)
    async with (
        LoopbackServer(app) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
        http.stream("GET", f"/events/{RID}", headers={"last-event-id": EVENTS[3].cursor}) as sse,
    ):
        for event in EVENTS[10:]:  # the hub only ever sees the response from the middle
            await hub.send(event)
        body = (await sse.aread()).decode()
    assert "event: too_old" in body
    assert "data: {" not in body  # no event that would hide the gap


# -- 21: a response id that cannot go into a URL -----------------------------------------

FAST = respflow.Reconnect(attempts=2, initial_delay=0.0)


def _recording(response_id: str) -> Recording:
    built = StreamBuilder(response_id=response_id, background=True)
    return Recording.from_events(built.code_call("print(1)", logs="1\n").message("one").events())


async def _cut_background_stream(response_id: str) -> list[respflow.Event]:
    async with (
        MockServer(_recording(response_id), cut_after=5) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as sdk,
        respflow.stream(sdk, model="m", input="x", background=True, reconnect=FAST) as events,
    ):
        return [event async for event in events]


def _ends_once_and_last(got: list[respflow.Event]) -> None:
    ends = [e for e in got if isinstance(e, respflow.END_TYPES)]
    assert len(ends) == 1
    assert got[-1] is ends[0]


@pytest.mark.parametrize("response_id", [".", ".."])
async def test_a_cut_stream_whose_id_cannot_be_a_url_segment_ends_with_an_error_event(
    anyio_backend: str, response_id: str
) -> None:
    got = await _cut_background_stream(response_id)
    assert got[0].type == "response.started"
    _ends_once_and_last(got)
    assert isinstance(got[-1], StreamTruncated)
    [error] = [e for e in got if isinstance(e, StreamError)]
    assert error.code == "resume_failed"
    assert "cannot be resumed" in error.message


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(response_id=st.one_of(st.sampled_from([".", "..", "a/..", "%2e%2e"]), st.text(max_size=12)))
async def test_any_server_chosen_id_ends_a_cut_stream_with_one_end_and_no_exception(
    anyio_backend: str, response_id: str
) -> None:
    _ends_once_and_last(await _cut_background_stream(response_id))


async def test_resume_and_cancel_refuse_an_id_that_cannot_be_a_url_segment(
    anyio_backend: str,
) -> None:
    async with (
        MockServer(SAMPLE) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-mock-openai") as sdk,
    ):
        for bad in (".", "..", "", "a/../b"):
            with pytest.raises(respflow.UsageError, match="response id"):
                await respflow.cancel(sdk, bad)
            with pytest.raises(respflow.UsageError, match="response id"):
                async with respflow.resume(sdk, bad) as events:
                    await events.__anext__()
        assert mock.requests == []  # nothing went out


# -- 13: no secret in any log, no number taken for one -----------------------------------

_TOKEN = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=16,
    max_size=40,
)
_B64URL = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=8,
    max_size=40,
)


@st.composite
def _secrets(draw: st.DrawFn) -> tuple[str, str]:
    """A secret as it shows up in real text, and the part that must not survive."""
    token = draw(_TOKEN)
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return f"sk-proj-{token}", token
    if kind == 1:
        scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER", "Authorization: Bearer"]))
        return f"{scheme} {token}", token
    if kind == 2:  # an Entra ID token
        header, payload, signature = draw(_B64URL), draw(_B64URL), draw(_B64URL)
        jwt = f"eyJ{header}.eyJ{payload}.{signature}"
        return jwt, f"{payload}.{signature}"
    if kind == 3:
        basic = base64.b64encode(f"alice:{token}".encode()).decode()
        return f"Authorization: Basic {basic}", basic
    if kind == 4:
        scheme = draw(st.sampled_from(["https", "wss", "ws", "redis"]))
        return f"{scheme}://alice:{token}@example.com:8443/in", token
    if kind == 5:
        return f"{draw(st.sampled_from(['wss', 'https']))}://{token}@example.com/", token
    if kind == 6:  # Azure's key in a URL, and other query credentials
        name = draw(st.sampled_from(["api-key", "api_key", "key", "token", "sig", "access_token"]))
        return f"https://r.openai.azure.com/openai/v1/responses?x=1&{name}={token}", token
    if kind == 7:
        name = draw(st.sampled_from(["api-key", "x-api-key", "Authorization", "Cookie"]))
        return f"{name}: {token}", token
    if kind == 8:
        name = draw(st.sampled_from(["api-key", "authorization", "client_secret", "password"]))
        quote = draw(st.sampled_from(['"', "'"]))
        return f"{{{quote}{name}{quote}: {quote}{token}{quote}}}", token
    if kind == 9:
        name = draw(
            st.sampled_from(["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"])
        )
        return f"{name}={token}", token
    if kind == 10:
        return f"sess-{token}", token
    return f"password={token}", token


_SEPARATORS = st.sampled_from([" ", "\n", ", ", " (", "\t", "; "])


@settings(max_examples=400, deadline=None)
@given(
    before=st.text(max_size=40),
    secret=_secrets(),
    after=st.text(max_size=40),
    left=_SEPARATORS,
    right=_SEPARATORS,
)
def test_a_secret_anywhere_in_text_is_gone(
    before: str, secret: tuple[str, str], after: str, left: str, right: str
) -> None:
    shown, hidden = secret
    assume(hidden not in before and hidden not in after)
    text = before + left + shown + right + after
    redacted = redact(text)
    assert hidden not in redacted
    assert redact(redacted) == redacted  # and redacting twice changes nothing more


_USAGE_KEYS = st.sampled_from(
    [
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "max_output_tokens",
        "token",
        "tokens",
        "api_key",
        "key",
        "count",
        "seconds",
    ]
)
_NUMBERS = st.recursive(
    st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_USAGE_KEYS, inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_NUMBERS, n=st.integers(min_value=0), m=st.integers(min_value=0))
def test_numbers_and_usage_are_never_redacted(value: object, n: int, m: int) -> None:
    assert redact(value) == value
    usage = {
        "input_tokens": n,
        "input_tokens_details": {"cached_tokens": m},
        "output_tokens": m,
        "output_tokens_details": {"reasoning_tokens": n},
        "total_tokens": n + m,
    }
    assert redact({"usage": usage}) == {"usage": usage}
    text = f"usage input_tokens={n}, output_tokens: {m}, max_tokens={n}, total_tokens {m}"
    assert redact(text) == text
    code = f"sorted(rows, key=len)[:{n}]"  # code that says key= holds no secret
    assert redact(code) == code


LEAKY = [
    "Bearer abcdefghijklmnop",  # the one case the old code caught
    "bearer lowercasebearertoken",
    "https://r.openai.azure.com/openai/v1/responses?api-key=azurekeyvalue123",
    "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJlbnRyYXRva2VuIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
    "Authorization: Basic " + base64.b64encode(b"alice:basicpassword").decode(),
    "wss://alice:userinfopassword@example.com/in",
    "https://example.com/feed?key=querykeyvalue",
]
SECRET_PARTS = [
    "abcdefghijklmnop",
    "lowercasebearertoken",
    "azurekeyvalue123",
    "eyJvaWQiOiJlbnRyYXRva2VuIn0",
    base64.b64encode(b"alice:basicpassword").decode(),
    "userinfopassword",
    "querykeyvalue",
]
USAGE = {
    "input_tokens": 812,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 377,
    "output_tokens_details": {"reasoning_tokens": 128},
    "total_tokens": 1189,
}


def _leaky_events() -> list[respflow.Event]:
    errors = [
        StreamError(
            response_id=RID, sequence_number=1, cursor=f"1-{k}", code="x", message=text, fatal=False
        )
        for k, text in enumerate(LEAKY)
    ]
    completed = respflow.ResponseCompleted(
        response_id=RID, sequence_number=2, cursor="2-0", status="completed", usage=USAGE
    )
    return [*errors, completed]


async def _leaky() -> AsyncIterator[respflow.Event]:
    for event in _leaky_events():
        yield event


def _no_secret_in(text: str) -> None:
    for part in SECRET_PARTS:
        assert part not in text


async def test_the_log_sink_redacts_every_shape_on_stdlib_logging(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.hostile.events")
    with caplog.at_level(logging.INFO, logger="test.hostile.events"):
        await deliver(_leaky(), LogSink(logger))
    fields = [record.respflow for record in caplog.records]  # type: ignore[attr-defined]
    _no_secret_in(msgspec.json.encode(fields).decode())
    assert fields[-1]["usage"] == USAGE  # what teams log for cost is kept, as numbers


async def test_the_log_sink_redacts_every_shape_on_structlog(anyio_backend: str) -> None:
    import structlog.testing

    with structlog.testing.capture_logs() as logs:
        await deliver(_leaky(), LogSink())
    _no_secret_in(repr(logs))
    assert logs[-1]["usage"] == USAGE


class _Leaky(Exception):
    pass


async def test_what_respflow_itself_logs_about_a_sink_holds_no_secret(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(event: respflow.Event) -> None:
        raise _Leaky(" ".join(LEAKY))  # a sink's error quoting its URL and headers

    other = MemorySink()
    with caplog.at_level(logging.INFO, logger="respflow"):
        failures = await deliver(_events(pause=0.001), other, CallbackSink(fail))
    assert failures
    assert "sink CallbackSink failed" in caplog.text
    _no_secret_in(caplog.text)
    [report] = [e for e in other.events if isinstance(e, StreamError)]
    _no_secret_in(report.message)  # nor does the stream.error the other sinks get


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, 0.0),  # a date with no zone
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
    ],
)
def test_a_retry_after_header_is_read_or_ignored_never_raises(
    headers: dict[str, str], seconds: float | None
) -> None:
    from respflow._sources.openai import _retry_after

    assert _retry_after(headers) == seconds
