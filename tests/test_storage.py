"""Safe names and the local storage: nothing from the network gets out of the root."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from respflow import FileTooLarge, LocalStorage, safe_filename

from ._downloads import Chunks

HOSTILE = [
    "../../etc/passwd",
    "/etc/shadow",
    "..\\..\\windows\\system32\\config",
    "con",
    "CON.txt",
    "lpt1",
    "a\x00b",
    "x" * 10_000,
    "report" + "é" * 5_000 + ".pdf",
    "..\uff0f..\uff0fetc\uff0fpasswd",  # fullwidth solidus
    "\uff0e\uff0e",  # fullwidth full stops
    "evil\u202egpj.exe",  # right-to-left override
    ".hidden",
    "...",
    "",
    "  ",
    "a/b/",
    "C:\\temp\\x.txt",
    "name\r\nX-Injected: 1",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_becomes_one_safe_component(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert safe not in (".", "..")
    assert not safe.startswith(".")
    assert len(safe.encode()) <= 200
    assert not any(unicodedata.category(ch).startswith("C") for ch in safe)
    stem = safe.split(".", 1)[0].lower()
    assert stem not in ("con", "prn", "aux", "nul", "lpt1", "com1")


def test_safe_names_keep_what_is_harmless() -> None:
    assert safe_filename("dice_rolls.csv") == "dice_rolls.csv"
    assert safe_filename("Résumé (final) v2.pdf") == "Résumé (final) v2.pdf"
    assert safe_filename("/mnt/data/chart.png") == "chart.png"
    long = safe_filename("a" * 500 + ".xlsx")
    assert long.endswith(".xlsx")
    assert len(long.encode()) == 200


@given(st.text())
def test_any_string_gives_a_name_that_stays_inside_a_folder(name: str) -> None:
    safe = safe_filename(name)
    root = Path("/srv/files")
    target = (root / safe).resolve()
    assert target.parent == root
    assert safe_filename(safe) == safe  # stable: a safe name stays as it is


def _visible(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _everything(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.anyio
async def test_hostile_names_land_inside_the_root_under_distinct_names(
    tmp_path: Path, anyio_backend: str
) -> None:
    storage = LocalStorage(tmp_path / "root")
    locations = set()
    for n, name in enumerate([*HOSTILE, "same.txt", "same.txt"]):
        stored = await storage.save("resp_1", f"key{n}", name, Chunks(b"x"))
        path = Path(stored.location)
        assert path.resolve().is_relative_to(storage.root)
        assert path.read_bytes() == b"x"
        locations.add(path)
    assert len(locations) == len(HOSTILE) + 2
    assert {p.name for p in locations} >= {"same.txt", "same (2).txt"}
    # The response id comes from the network too.
    stored = await storage.save("../../outside", "k", "f.txt", Chunks(b"y"))
    assert Path(stored.location).resolve().is_relative_to(storage.root)


@pytest.mark.anyio
async def test_a_download_cut_halfway_leaves_nothing(tmp_path: Path, anyio_backend: str) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(ConnectionResetError):
        await storage.save("resp_1", "k", "big.bin", Chunks(b"a" * 1000, b"b", fail_after=1))
    assert _everything(tmp_path) == []
    assert await storage.find("resp_1", "k") is None


@pytest.mark.anyio
async def test_size_caps_keep_nothing_of_a_file_too_large(
    tmp_path: Path, anyio_backend: str
) -> None:
    storage = LocalStorage(tmp_path, max_file_bytes=10, max_response_bytes=15)
    with pytest.raises(FileTooLarge, match="max_file_bytes"):
        await storage.save("r", "a", "a.bin", Chunks(b"123456", b"7890x"))
    await storage.save("r", "b", "b.bin", Chunks(b"1234567890"))
    with pytest.raises(FileTooLarge, match="max_response_bytes"):
        await storage.save("r", "c", "c.bin", Chunks(b"123456"))
    assert [p.name for p in _visible(tmp_path)] == ["b.bin"]
    assert not [p for p in _everything(tmp_path) if p.suffix == ".part"]


@pytest.mark.anyio
async def test_a_file_is_stored_once_per_key_across_runs(
    tmp_path: Path, anyio_backend: str
) -> None:
    first = await LocalStorage(tmp_path).save("r", "cntr/cfile", "a.csv", Chunks(b"a,b\n"))
    assert first.sha256 == hashlib.sha256(b"a,b\n").hexdigest()
    later = LocalStorage(tmp_path)  # a new process, the same folder
    assert await later.find("r", "cntr/cfile") == first
    again = await later.save("r", "cntr/cfile", "a.csv", Chunks(b"other"))
    assert again == first
    assert [p.name for p in _visible(tmp_path)] == ["a.csv"]
    os.remove(first.location)  # gone from disk: not found any more
    assert await LocalStorage(tmp_path).find("r", "cntr/cfile") is None
