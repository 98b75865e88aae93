"""Each response folder's manifest.json, and ``respflow files verify`` checking a folder
against it: a changed byte, a missing file and an extra file are each caught."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import msgspec
import openai
import pytest

import respflow
from respflow import LocalStorage
from respflow._cli.main import main
from respflow._files.names import stored_name
from respflow.testing import MockServer, Recording

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))
FOLDER = "resp_sample_dice"


async def _save_the_sample(root: Path) -> list[respflow.FileSaved]:
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        respflow.stream(client, model="m", input="x") as events,
        respflow.fetch_files(events, client, LocalStorage(root)) as out,
    ):
        return [e async for e in out if isinstance(e, respflow.FileSaved)]


@pytest.fixture
async def saved(anyio_backend: str, tmp_path: Path) -> Path:
    """A storage root holding the sample's files, as a run saved them."""
    await _save_the_sample(tmp_path / "files")
    return tmp_path / "files"


def _verify(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["files", "verify", str(path)])
    return code, capsys.readouterr().out.splitlines()


async def test_the_manifest_lists_each_file_with_where_it_came_from(saved: Path) -> None:
    manifest = json.loads((saved / FOLDER / "manifest.json").read_text())
    assert manifest["response_id"] == FOLDER
    files = {entry["file"]: entry for entry in manifest["files"]}
    on_disk = {p.name for p in (saved / FOLDER).iterdir() if not p.name.startswith(".")}
    assert set(files) == on_disk - {"manifest.json"}
    csv = files["dice_rolls.csv"]
    data = (FILES / "dice_rolls.csv").read_bytes()
    assert csv["size"] == len(data)
    assert csv["media_type"] == "text/csv"
    assert (csv["container_id"], csv["file_id"]) == ("cntr_sample", "cfile_sample_rolls")
    assert (csv["produced_by"], csv["provenance"]) == ("ci_0001", "code_names_path")
    assert (csv["cited_by"], csv["resolved_by"]) == ("msg_0002", "citation")
    assert csv["saved_at"].endswith("Z")
    assert files["dice_chart.png"]["path"] == "/mnt/data/dice_chart.png"
    # what the library reads back is what was written
    read = respflow.read_manifest(saved / FOLDER)
    assert {e.file for e in read.files} == set(files)


async def test_verify_passes_a_folder_as_it_was_saved(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for where in (saved, saved / FOLDER):  # the storage root or one response's folder
        code, lines = _verify(where, capsys)
        assert code == 0
        assert lines == ["ok: 3 files in 1 folder, each as its manifest lists it"]


async def test_verify_catches_a_changed_byte_a_missing_file_and_an_extra_one(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = saved / FOLDER
    data = bytearray((folder / "dice_rolls.csv").read_bytes())
    data[3] ^= 1  # one bit of one byte, same size
    (folder / "dice_rolls.csv").write_bytes(bytes(data))
    (folder / "dice_chart.png").unlink()
    (folder / "notes.txt").write_text("not saved by respflow")

    code, lines = _verify(saved, capsys)
    assert code == 1
    assert lines[0].startswith("changed     resp_sample_dice/dice_rolls.csv: its sha256 is")
    assert lines[1] == (
        "missing     resp_sample_dice/dice_chart.png: listed in the manifest, not in the folder"
    )
    assert lines[2] == "unlisted    resp_sample_dice/notes.txt: in the folder, not in its manifest"
    assert lines[3] == "3 problems (1 changed, 1 missing, 1 unlisted); checked 3 files in 1 folder"
    report = respflow.verify_files(saved)
    assert [(p.kind, p.file) for p in report.problems] == [
        ("changed", f"{FOLDER}/dice_rolls.csv"),
        ("missing", f"{FOLDER}/dice_chart.png"),
        ("unlisted", f"{FOLDER}/notes.txt"),
    ]


async def test_each_problem_alone_fails_verify(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = saved / FOLDER
    (folder / "dice_rolls.csv").write_bytes((folder / "dice_rolls.csv").read_bytes() + b"\n")
    assert _verify(saved, capsys)[0] == 1
    await _save_the_sample(saved)  # a second run does not paper over it
    code, lines = _verify(saved, capsys)
    assert (code, lines[0].split()[0]) == (1, "changed")


async def test_a_second_run_keeps_the_manifest_and_when_each_file_was_saved(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((saved / FOLDER / "manifest.json").read_text())
    again = await _save_the_sample(saved)
    assert len(again) == 3
    after = json.loads((saved / FOLDER / "manifest.json").read_text())
    assert after == before
    assert _verify(saved, capsys)[0] == 0


async def test_a_manifest_entry_outside_its_folder_is_never_opened(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (saved / "secret.txt").write_text("outside the response folder")
    manifest_path = saved / FOLDER / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = {**manifest["files"][0], "file": "../secret.txt"}
    manifest["files"].append(entry)
    manifest_path.write_text(json.dumps(manifest))
    code, lines = _verify(saved / FOLDER, capsys)
    assert code == 1
    assert (
        lines[0] == "unreadable  ../secret.txt: not a file name in this folder: it was not opened"
    )


async def test_leftovers_of_an_interrupted_write_are_not_files(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (saved / FOLDER / ".3f2a9c10d4e5b6a7.part").write_bytes(b"half a file")
    assert _verify(saved, capsys)[0] == 0


async def test_a_folder_without_a_manifest_and_a_broken_manifest_are_reported(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (saved / "resp_old").mkdir()
    (saved / "resp_old" / "a.csv").write_text("1\n")
    code, lines = _verify(saved, capsys)
    assert code == 1
    assert lines[0].startswith("unlisted    resp_old/: a folder with no manifest.json")
    (saved / FOLDER / "manifest.json").write_text('{"files": [')  # not what respflow wrote
    code, lines = _verify(saved / FOLDER, capsys)
    assert code == 1
    assert lines[0].startswith("unreadable  manifest.json:")


def test_verify_of_a_folder_respflow_never_saved_into_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["files", "verify", str(tmp_path)]) == 1
    said = capsys.readouterr().err
    assert said.startswith("respflow files: no manifest.json in")
    assert main(["files", "verify", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


async def test_a_manifest_that_is_not_respflows_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "files" / FOLDER
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("someone's own file\n")
    saved = await _save_the_sample(tmp_path / "files")
    assert len(saved) == 3  # the files are saved all the same
    assert (folder / "manifest.json").read_text() == "someone's own file\n"


def test_no_saved_file_takes_the_manifests_name() -> None:
    for path in ("/mnt/data/manifest.json", "/mnt/data/MANIFEST.json", "manifest.json"):
        name = stored_name(path)
        assert name.casefold() != "manifest.json"
        assert name.startswith(("manifest~", "MANIFEST~"))


async def _stored(storage: LocalStorage, name: str, data: bytes) -> respflow.FileSaved:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    stored = await storage.save(FOLDER, f"key:{name}", name, chunks())
    return respflow.FileSaved(
        response_id=FOLDER,
        sequence_number=1,
        cursor="1-0",
        container_id="cntr",
        file_id=None,
        filename=stored.filename,
        location=stored.location,
        size=stored.size,
        sha256=stored.sha256,
        produced_by="ci_1",
        provenance="code_names_path",
    )


async def test_two_storages_on_one_folder_list_each_others_files(
    anyio_backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = LocalStorage(tmp_path), LocalStorage(tmp_path)
    for storage, name in ((first, "a.csv"), (second, "b.csv"), (first, "c.csv")):
        await storage.record(await _stored(storage, name, name.encode()))
        listed = respflow.read_manifest(tmp_path / FOLDER)  # complete after every file
        assert name in {entry.file for entry in listed.files}
    assert [e.file for e in respflow.read_manifest(tmp_path / FOLDER).files] == [
        "a.csv",
        "b.csv",
        "c.csv",
    ]
    assert _verify(tmp_path, capsys) == (
        0,
        ["ok: 3 files in 1 folder, each as its manifest lists it"],
    )


async def test_only_a_file_the_storage_saved_in_its_folder_is_listed(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "files")
    saved = await _stored(storage, "a.csv", b"1")
    (tmp_path / "outside.txt").write_text("x")
    for forged in (
        msgspec.structs.replace(saved, filename="../outside.txt"),
        msgspec.structs.replace(saved, location=str(tmp_path / "outside.txt")),
        msgspec.structs.replace(saved, filename="manifest.json"),
    ):
        with pytest.raises(respflow.RespflowError, match="is not a file saved in"):
            await storage.record(forged)
    assert not (tmp_path / "files" / FOLDER / "manifest.json").exists()


def test_the_demo_says_how_to_verify_what_it_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = tmp_path / "saved files"
    assert main(["demo", "--pace", "0", "--color", "never", "--files-dir", str(files)]) == 0
    out = capsys.readouterr().out
    assert f"respflow files verify '{files}'" in out
    assert "(citation, made by ci_0001)" in out
    assert _verify(files, capsys)[0] == 0
