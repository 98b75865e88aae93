"""The file fetcher against a hostile or broken API and storage: every response still ends.

Whatever the container listing, a download or the storage does, each file the response
announced ends in exactly one ``file.saved`` or ``file.failed`` and the response's end is
delivered, last. Everything runs against the loopback mock over real HTTP.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import FileFailed, FileSaved, FileTooLarge, LocalStorage, Reconnect
from respflow.testing import LoopbackServer, MockServer, Recording, StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
FILES = Path(str(SAMPLES.joinpath("files")))
OPENAI_KEY = "sk-mock-openai"
FAST = Reconnect(attempts=2, initial_delay=0.01)
CHART = "/mnt/data/dice_chart.png"
PNG = (FILES / "dice_chart.png").read_bytes()


def _linking(container_id: str = "cntr_sample", path: str = CHART) -> Recording:
    """A response whose answer links a container file with no annotation."""
    builder = (
        StreamBuilder(response_id="resp_link")
        .code_call("plot()", logs="", container_id=container_id)
        .message(f"The chart: [chart](sandbox:{path}).")
    )
    return Recording.from_bytes(to_sse(builder.events()))


def _citing(container_id: str = "cntr_sample", response_id: str = "resp_cite") -> Recording:
    citation = {
        "type": "container_file_citation",
        "container_id": container_id,
        "file_id": "cfile_sample_rolls",
        "filename": "dice_rolls.csv",
        "start_index": 0,
        "end_index": 0,
    }
    builder = (
        StreamBuilder(response_id=response_id)
        .code_call("save()", logs="", container_id=container_id)
        .message("The rolls.", annotations=[citation])
    )
    return Recording.from_bytes(to_sse(builder.events()))


async def _run(
    mock: MockServer,
    storage: LocalStorage,
    client: openai.AsyncOpenAI | None = None,
    **options: Any,
) -> list[respflow.Event]:
    options.setdefault("retry", FAST)
    async with (
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
        if client is None
        else client as sdk,
        respflow.stream(sdk, model="m", input="x") as events,
        respflow.fetch_files(events, sdk, storage, **options) as out,
    ):
        return [event async for event in out]


async def _fetch_only(
    mock: MockServer, recording: Recording, storage: LocalStorage, **options: Any
) -> list[respflow.Event]:
    """The fetcher on a response read from memory: every request the mock sees is its own."""
    asm = respflow.Assembler()
    wire = [*asm.feed(recording.to_sse()), *asm.close()]

    async def replayed() -> AsyncIterator[respflow.Event]:
        for event in wire:
            yield event

    options.setdefault("retry", FAST)
    async with (
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0) as sdk,
        respflow.fetch_files(replayed(), sdk, storage, **options) as out,
    ):
        return [event async for event in out]


def _files(events: list[respflow.Event]) -> list[FileSaved | FileFailed]:
    return [e for e in events if isinstance(e, FileSaved | FileFailed)]


def _ends_last_once(events: list[respflow.Event]) -> None:
    ends = [n for n, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends == [len(events) - 1]


# -- item 2: a listing that fails in any way is that link's file.failed ----------------------

LISTING_FAILURES: dict[str, dict[str, Any]] = {
    "dropped connection": {"cut_listings_after": 10},
    "not JSON": {"listing_body": b"<html>Bad gateway</html>"},
    "JSON but not a listing": {"listing_body": b'["data", 1]'},
    "data not a list": {"listing_body": b'{"data": {"id": "x"}, "has_more": false}'},
    "entries without id": {
        "listing_body": msgspec.json.encode(
            {"data": [{"path": CHART, "source": "assistant"}, 7, None], "has_more": False}
        )
    },
    "ids that are not strings": {
        "listing_body": msgspec.json.encode(
            {"data": [{"id": {"a": 1}, "path": CHART, "source": "assistant"}], "has_more": False}
        )
    },
}


@pytest.mark.parametrize("knobs", LISTING_FAILURES.values(), ids=list(LISTING_FAILURES))
@pytest.mark.parametrize("all_files", [False, True], ids=["link", "all_assistant_files"])
async def test_a_broken_listing_is_a_file_failed_and_the_response_still_ends(
    anyio_backend: str, tmp_path: Path, knobs: dict[str, Any], all_files: bool
) -> None:
    async with MockServer(_linking(), files=FILES, **knobs) as mock:
        got = await _run(mock, LocalStorage(tmp_path), images=False, all_assistant_files=all_files)
    _ends_last_once(got)
    files = _files(got)
    assert files, "the link got no outcome"
    assert all(isinstance(e, FileFailed) for e in files)
    for failed in files:
        assert isinstance(failed, FileFailed)
        assert failed.container_id == "cntr_sample"
        assert "cntr_sample" in failed.reason
        assert failed.hint
    link = [e for e in files if e.path == CHART]
    assert len(link) == 1
    assert not list(tmp_path.rglob("*.png"))


async def test_a_listing_that_times_out_is_a_file_failed(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(_linking(), files=FILES, listing_delay=5) as mock:
        client = openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0, timeout=0.3
        )
        got = await _run(mock, LocalStorage(tmp_path), client, images=False)
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert (failed.status, failed.path) == (None, CHART)
    assert "timed out" in failed.reason.lower()


@pytest.mark.parametrize("container_id", [".", ".."])
async def test_a_container_id_that_is_a_path_step_is_refused_without_a_request(
    anyio_backend: str, tmp_path: Path, container_id: str
) -> None:
    async with MockServer(_linking(container_id), files=FILES) as mock:
        got = await _run(mock, LocalStorage(tmp_path), images=False, all_assistant_files=True)
    _ends_last_once(got)
    files = _files(got)
    assert files
    for failed in files:
        assert isinstance(failed, FileFailed)
        assert repr(container_id) in failed.reason
    # ".." would have turned /containers/../files into another endpoint of the API.
    assert [r.path for r in mock.requests] == ["/v1/responses"]


async def test_a_cited_file_id_that_is_a_path_step_is_refused_without_a_request(
    anyio_backend: str, tmp_path: Path
) -> None:
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_sample",
        "file_id": "..",
        "filename": "x.csv",
        "start_index": 0,
        "end_index": 0,
    }
    builder = StreamBuilder(response_id="resp_dots").message("x", annotations=[citation])
    async with MockServer(Recording.from_bytes(to_sse(builder.events())), files=FILES) as mock:
        got = await _run(mock, LocalStorage(tmp_path))
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert "'..'" in failed.reason
    assert [r.path for r in mock.requests] == ["/v1/responses"]


# -- item 3: the storage failing is that file's file.failed ---------------------------------


def _data_url(payload: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(payload).decode()


async def test_two_images_of_a_call_with_a_very_long_id_each_get_an_outcome(
    anyio_backend: str, tmp_path: Path
) -> None:
    builder = (
        StreamBuilder(response_id="resp_long")
        .code_call(
            "show()",
            logs="",
            images=[_data_url(PNG), _data_url(PNG + b"2")],
            item_id="ci_" + "x" * 400,
        )
        .message("Two charts.")
    )
    async with MockServer(Recording.from_bytes(to_sse(builder.events()))) as mock:
        got = await _run(mock, LocalStorage(tmp_path))
    _ends_last_once(got)
    files = _files(got)
    assert len(files) == 2  # one each: both saved, or one refused by the storage's naming
    assert any(isinstance(e, FileSaved) for e in files)
    for failed in files:
        if isinstance(failed, FileFailed):
            assert "storage" in failed.hint


async def test_a_response_folder_that_links_out_of_the_root_is_a_file_failed(
    anyio_backend: str, tmp_path: Path
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "resp_cite")
    async with MockServer(_citing(), files=FILES) as mock:
        got = await _run(mock, LocalStorage(root), images=False)
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert failed.file_id == "cfile_sample_rolls"
    assert "storage" in failed.hint
    assert list(outside.iterdir()) == []


class _Unwritable(LocalStorage):
    """A storage whose disk is full."""

    async def save(self, *args: Any, **kwargs: Any) -> respflow.StoredFile:
        raise OSError(28, "No space left on device")


async def test_a_storage_that_cannot_write_is_a_file_failed_for_every_kind_of_file(
    anyio_backend: str, tmp_path: Path
) -> None:
    sample = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
    async with MockServer(sample, files=FILES) as mock:
        got = await _run(mock, _Unwritable(tmp_path))
    _ends_last_once(got)
    files = _files(got)
    assert len(files) == 3  # the citation, the link and the image
    for failed in files:
        assert isinstance(failed, FileFailed)
        assert "No space left on device" in failed.reason
        assert "storage" in failed.hint
    downloads = [r for r in mock.requests if r.path.endswith("/content")]
    assert len(downloads) == 2  # a storage failure is not retried as a network one


# -- item 4: an endless listing is bounded ---------------------------------------------------


async def test_an_endless_listing_is_read_up_to_a_bound_of_pages(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(
        _linking(path="/mnt/data/never_listed.csv"), files=FILES, endless_listing=True
    ) as mock:
        got = await _run(mock, LocalStorage(tmp_path), images=False, max_listing_pages=7)
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert "7 pages" in failed.reason
    assert "max_listing_pages" in failed.hint
    assert mock.listing_pages == 7


async def test_an_endless_listing_stops_at_the_default_bound(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(
        _linking(path="/mnt/data/never_listed.csv"), files=FILES, endless_listing=True
    ) as mock:
        got = await _run(mock, LocalStorage(tmp_path), images=False)
    _ends_last_once(got)
    assert mock.listing_pages == 100  # the default max_listing_pages


async def test_a_slow_endless_listing_stops_at_the_time_bound(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(
        _linking(path="/mnt/data/never_listed.csv"),
        files=FILES,
        endless_listing=True,
        listing_delay=0.1,
    ) as mock:
        got = await _run(
            mock,
            LocalStorage(tmp_path),
            images=False,
            max_listing_pages=10_000,
            listing_timeout=0.5,
        )
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert "listing_timeout" in failed.hint
    assert mock.listing_pages < 100


async def test_a_file_on_a_later_page_of_the_listing_is_found(
    anyio_backend: str, tmp_path: Path
) -> None:
    folder = tmp_path / "container"
    folder.mkdir()
    for n in range(250):  # three pages of 100
        (folder / f"f{n:03d}.txt").write_text(str(n))
    async with MockServer(_linking(path="/mnt/data/f249.txt"), files=folder) as mock:
        got = await _run(mock, LocalStorage(tmp_path / "out"), images=False)
    [saved] = _files(got)
    assert isinstance(saved, FileSaved)
    assert Path(saved.location).read_text() == "249"
    assert mock.listing_pages == 3


# -- Retry-After from the network: read safely, never an endless wait ------------------------


async def test_a_retry_after_of_years_fails_the_file_instead_of_holding_the_end(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(_citing(), files=FILES) as mock:
        mock.fail_next(429, retry_after=10**9)
        with anyio.fail_after(30):  # turns the old endless wait into a failure, not a timing
            got = await _fetch_only(mock, _citing(), LocalStorage(tmp_path))
    _ends_last_once(got)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert failed.status == 429
    assert "1e+09 s" in failed.reason
    assert [r.status for r in mock.requests if r.path.endswith("/content")] == [429]


async def test_a_retry_after_date_without_a_time_zone_is_retried_as_usual(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(_citing(), files=FILES) as mock:
        mock.fail_next(429, retry_after="Wed, 21 Oct 2015 07:28:00 -0000")
        got = await _fetch_only(mock, _citing(), LocalStorage(tmp_path))
    _ends_last_once(got)
    [saved] = _files(got)
    assert isinstance(saved, FileSaved)
    assert [r.status for r in mock.requests if r.path.endswith("/content")] == [429, 200]


# -- item 9: the per-response byte cap holds under concurrent downloads ---------------------


def _many(tmp_path: Path, n: int, size: int) -> tuple[Recording, Path]:
    folder = tmp_path / "container"
    folder.mkdir()
    citations = []
    for i in range(n):
        (folder / f"part{i}.bin").write_bytes(bytes([i]) * size)
        citations.append(
            {
                "type": "container_file_citation",
                "container_id": "cntr_many",
                "file_id": f"cfile_{i}",
                "filename": f"part{i}.bin",
                "start_index": 0,
                "end_index": 0,
            }
        )
    builder = (
        StreamBuilder(response_id="resp_many")
        .code_call("save()", logs="", container_id="cntr_many")
        .message("Here are the parts.", annotations=citations)
    )
    return Recording.from_bytes(to_sse(builder.events())), folder


async def test_the_response_cap_holds_when_downloads_run_at_once(
    anyio_backend: str, tmp_path: Path
) -> None:
    recording, folder = _many(tmp_path, 4, 1000)
    storage = LocalStorage(tmp_path / "out", max_response_bytes=1500)
    async with MockServer(recording, files=folder, file_delay=0.2) as mock:
        got = await _run(mock, storage, concurrency=4)
    assert mock.peak_downloads == 4
    files = _files(got)
    assert len(files) == 4
    saved = [e for e in files if isinstance(e, FileSaved)]
    assert len(saved) == 1
    for failed in files:
        if isinstance(failed, FileFailed):
            assert "max_response_bytes" in failed.reason
    stored = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix == ".bin"]
    assert sum(p.stat().st_size for p in stored) <= 1500


# -- item 20: a redirect to another host is never followed ----------------------------------


class _Foreign:
    """An ASGI app for the host nobody configured: it records whatever reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append({"path": scope["path"], **headers})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"stolen"})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_is_not_followed_and_no_key_leaves(
    anyio_backend: str, tmp_path: Path, status: int
) -> None:
    foreign = _Foreign()
    sample = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
    async with (
        LoopbackServer(foreign) as elsewhere,
        MockServer(
            sample,
            files=FILES,
            redirect_containers_to=f"http://user:pw@127.0.0.1:{elsewhere.port}",
            redirect_status=status,
        ) as mock,
    ):
        client = openai.AsyncOpenAI(
            base_url=mock.openai_base_url,
            api_key=OPENAI_KEY,
            max_retries=0,
            default_headers={"api-key": "azure-secret"},
        )
        got = await _run(mock, LocalStorage(tmp_path), client, all_assistant_files=True)
    assert foreign.seen == []
    _ends_last_once(got)
    failed = [e for e in _files(got) if isinstance(e, FileFailed)]
    assert {e.path for e in failed} >= {CHART}  # the link: its listing was redirected
    assert {e.file_id for e in failed} >= {"cfile_sample_rolls"}  # the citation
    for event in failed:
        assert event.status == status
        assert elsewhere.url.removeprefix("http://") in event.reason
        assert "redirect" in event.hint
        assert "azure-secret" not in event.reason + event.hint
        assert "pw" not in event.reason  # a redirect's user part is not repeated
    assert not (tmp_path / "resp_sample" / "dice_rolls.csv").exists()


# -- the fetcher as a whole ------------------------------------------------------------------


async def test_a_listing_is_not_reused_by_a_later_response(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Containers live across responses and gain files: each response lists afresh."""
    folder = tmp_path / "container"
    folder.mkdir()
    (folder / "first.txt").write_text("1")
    (tmp_path / "second.txt").write_text("2")
    async with (
        MockServer(_linking(path="/mnt/data/first.txt"), files=folder) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0) as sdk,
    ):

        async def two_responses() -> AsyncIterator[respflow.Event]:
            for name in ("first", "second"):
                builder = (
                    StreamBuilder(response_id=f"resp_{name}")
                    .code_call("save()", logs="", container_id="cntr_sample")
                    .message(f"[file](sandbox:/mnt/data/{name}.txt)")
                )
                asm = respflow.Assembler()
                for event in [*asm.feed(to_sse(builder.events())), *asm.close()]:
                    yield event
                mock.containers.add("cntr_sample", tmp_path / "second.txt")

        storage = LocalStorage(tmp_path / "out")
        async with respflow.FileFetcher(sdk, storage, images=False).process(two_responses()) as out:
            got = [event async for event in out]
    saved = [e for e in got if isinstance(e, FileSaved)]
    assert [Path(e.location).read_text() for e in saved] == ["1", "2"]


class _Held:
    """A download that sends its bytes, then waits to be told to finish (or to fail)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent = anyio.Event()
        self.finish = anyio.Event()
        self.fail = False
        self._taken = False

    def __aiter__(self) -> _Held:
        return self

    async def __anext__(self) -> bytes:
        if not self._taken:
            self._taken = True
            return self.data
        self.sent.set()  # the bytes were taken: the storage counts them from here
        await self.finish.wait()
        if self.fail:
            raise ConnectionResetError("the connection dropped")
        raise StopAsyncIteration


def _stored(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in root.rglob("*.bin")}


async def test_downloads_under_way_share_the_response_cap(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path, max_response_bytes=1500)
    first = _Held(b"a" * 1000)
    async with anyio.create_task_group() as group:
        group.start_soon(storage.save, "r", "first", "first.bin", first)
        await first.sent.wait()
        second = _Held(b"b" * 1000)
        second.finish.set()
        with pytest.raises(FileTooLarge, match="max_response_bytes"):
            await storage.save("r", "second", "second.bin", second)
        first.finish.set()
    assert _stored(tmp_path) == {"first.bin": 1000}
    last = _Held(b"c" * 500)  # what is left of the cap is still there to use
    last.finish.set()
    await storage.save("r", "last", "last.bin", last)
    assert _stored(tmp_path) == {"first.bin": 1000, "last.bin": 500}


async def test_a_download_that_fails_gives_back_its_share_of_the_cap(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path, max_response_bytes=1500)
    cut = _Held(b"a" * 1000)
    cut.fail = True
    cut.finish.set()
    with pytest.raises(ConnectionResetError):
        await storage.save("r", "cut", "cut.bin", cut)
    whole = _Held(b"b" * 1500)
    whole.finish.set()
    await storage.save("r", "whole", "whole.bin", whole)
    assert _stored(tmp_path) == {"whole.bin": 1500}


async def test_a_failed_download_found_through_a_link_names_the_link(
    anyio_backend: str, tmp_path: Path
) -> None:
    """The rewriter marks a link unavailable by the path the answer gave, which may differ
    from the container's path when the file was found by its name."""
    link = "/mnt/data/charts/dice_chart.png"
    async with MockServer(_linking(path=link), files=FILES) as mock:
        got = await _run(mock, _Unwritable(tmp_path), images=False)
    [failed] = _files(got)
    assert isinstance(failed, FileFailed)
    assert failed.path == link


class _Careless(LocalStorage):
    """A storage backend with a bug: it forgets to say where the file went."""

    async def save(self, *args: Any, **kwargs: Any) -> respflow.StoredFile:
        stored = await super().save(*args, **kwargs)
        return None if stored.size else stored  # type: ignore[return-value]


async def test_a_failure_nobody_foresaw_is_still_that_files_file_failed(
    anyio_backend: str, tmp_path: Path
) -> None:
    sample = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
    async with MockServer(sample, files=FILES) as mock:
        got = await _run(mock, _Careless(tmp_path))
    _ends_last_once(got)
    files = _files(got)
    assert len(files) == 3  # the citation, the link and the image
    for failed in files:
        assert isinstance(failed, FileFailed)
        assert "unexpectedly" in failed.reason
    assert {e.file_id for e in files} >= {"cfile_sample_rolls"}
    assert {e.path for e in files} >= {CHART}


# -- every response ends, whatever the API and the network do ------------------------------

FUZZ_CONTAINER = "cntr_fuzz"
CITABLE = {"cfile_fuzz_0": "f0.csv", "cfile_fuzz_1": "f1.csv", "cfile_gone": "gone.csv"}
LINKABLE = ["/mnt/data/g0.txt", "/mnt/data/G1.TXT", "/mnt/data/sub/g2.txt", "/mnt/data/none.pdf"]


def _fuzz_container(tmp_path: Path) -> tuple[Recording, Path]:
    """A container with two cited files and two only a link finds (one by another case)."""
    folder = tmp_path / "fuzz-container"
    if not folder.exists():
        folder.mkdir()
        for name in ("f0.csv", "f1.csv", "g0.txt", "g1.txt"):
            (folder / name).write_text(f"{name}\n" * 20)
    return _answer(list(CITABLE)[:2], [], []), folder


def _answer(cited: list[str], links: list[str], images: list[str]) -> Recording:
    citations = [
        {
            "type": "container_file_citation",
            "container_id": FUZZ_CONTAINER,
            "file_id": file_id,
            "filename": CITABLE[file_id],
            "start_index": 0,
            "end_index": 0,
        }
        for file_id in cited
    ]
    text = "Files: " + " ".join(f"[f{n}](sandbox:{path})" for n, path in enumerate(links))
    builder = (
        StreamBuilder(response_id="resp_fuzz")
        .code_call("work()", logs="", images=images, container_id=FUZZ_CONTAINER)
        .message(text, annotations=citations)
    )
    return Recording.from_bytes(to_sse(builder.events()))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
listing_ids = st.sampled_from(["", ".", "..", "cfile_x", "cfile_y", "a/b", "é"]) | json_values
listing_entries = st.fixed_dictionaries(
    {},
    optional={
        "id": listing_ids,
        "path": st.sampled_from([*LINKABLE, "/mnt/data/g0.TXT", "/mnt/data/x/g1.txt"])
        | json_values,
        "source": st.sampled_from(["assistant", "user"]) | json_values,
    },
)
listing_pages = st.fixed_dictionaries(
    {"data": st.lists(listing_entries, max_size=4, unique_by=lambda e: repr(e.get("id")))},
    optional={"has_more": st.booleans() | json_values, "last_id": listing_ids},
).map(msgspec.json.encode)
listing_bodies = (
    st.none() | listing_pages | st.binary(max_size=40) | json_values.map(msgspec.json.encode)
)
failures = st.lists(
    st.tuples(st.sampled_from([302, 400, 401, 404, 429, 500, 503]), st.integers(1, 3)),
    max_size=2,
)
images = st.lists(
    st.sampled_from([_data_url(PNG), "data:image/png;base64,@@not base64@@"]), max_size=2
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cited=st.lists(st.sampled_from(list(CITABLE)), unique=True),
    links=st.lists(st.sampled_from(LINKABLE), unique=True),
    shown=images,
    listing_body=listing_bodies,
    endless=st.booleans(),
    cut_listings_after=st.none() | st.integers(0, 30),
    cut_files_after=st.none() | st.integers(0, 30),
    max_cuts=st.none() | st.integers(1, 3),
    fail=failures,
    cap=st.sampled_from([None, 50, 500]),
)
async def test_every_announced_file_gets_one_outcome_and_the_end_comes_last(
    anyio_backend: str,
    tmp_path: Path,
    cited: list[str],
    links: list[str],
    shown: list[str],
    listing_body: bytes | None,
    endless: bool,
    cut_listings_after: int | None,
    cut_files_after: int | None,
    max_cuts: int | None,
    fail: list[tuple[int, int]],
    cap: int | None,
) -> None:
    base, folder = _fuzz_container(tmp_path)
    asm = respflow.Assembler()
    wire = [*asm.feed(_answer(cited, links, shown).to_sse()), *asm.close()]

    async def replayed() -> AsyncIterator[respflow.Event]:
        for event in wire:
            yield event

    caps = {} if cap is None else {"max_response_bytes": cap}
    storage = LocalStorage(tmp_path / f"out-{len(list(tmp_path.iterdir()))}", **caps)
    async with (
        MockServer(
            base,
            files=folder,
            listing_body=listing_body,
            endless_listing=endless,
            cut_listings_after=cut_listings_after,
            cut_files_after=cut_files_after,
            max_cuts=max_cuts,
        ) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0) as sdk,
    ):
        for status, times in fail:
            mock.fail_next(status, times=times)
        fetcher = respflow.FileFetcher(sdk, storage, retry=FAST, max_listing_pages=3)
        async with fetcher.process(replayed()) as out:
            got = [event async for event in out]

    passed = [e for e in got if not isinstance(e, FileSaved | FileFailed)]
    assert [(e.type, e.sequence_number) for e in passed] == [
        (e.type, e.sequence_number) for e in wire
    ]
    _ends_last_once(got)
    outcomes = _files(got)
    for file_id in cited:
        assert [e.file_id for e in outcomes].count(file_id) == 1
    for link in links:
        assert [e.path for e in outcomes if isinstance(e, FileFailed)].count(link) <= 1
    by_link = [
        e
        for e in outcomes
        if (isinstance(e, FileSaved) and e.resolved_by == "link")
        or (isinstance(e, FileFailed) and e.path in links)
    ]
    assert len(by_link) == len(links)
    assert len(outcomes) == len(cited) + len(links) + len(shown)
    saved = [e for e in outcomes if isinstance(e, FileSaved)]
    assert sum(e.size for e in saved) <= (cap or 10**9)


async def test_a_wrong_key_through_fetch_files_alone_is_authentication_failed_itself(
    anyio_backend: str, tmp_path: Path
) -> None:
    recording = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())

    async def fetch_all(client: openai.AsyncOpenAI) -> None:
        events = respflow.stream(client, model="m", input="x")
        async with respflow.fetch_files(events, client, LocalStorage(tmp_path)) as out:
            async for _ in out:
                pass

    async with (
        MockServer(recording, files=FILES) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-no", max_retries=0) as bad,
    ):
        with pytest.raises(respflow.AuthenticationFailed):
            await fetch_all(bad)
