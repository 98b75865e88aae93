from __future__ import annotations

import subprocess
import sys
import types
import typing

import pytest

import respflow
from respflow import _events


def test_all_is_sorted_and_complete() -> None:
    assert respflow.__all__ == sorted(respflow.__all__, key=lambda n: (not n.isupper(), n))
    public = {
        name
        for name in dir(respflow)
        if not name.startswith("_") and not isinstance(getattr(respflow, name), types.ModuleType)
    }
    assert public == set(respflow.__all__) - {"__version__"}


def test_a_name_respflow_does_not_have_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'strem'"):
        respflow.strem  # noqa: B018


def test_every_event_class_is_in_the_union_and_exported() -> None:
    members = typing.get_args(_events.Event)
    classes = {
        c
        for c in vars(_events).values()
        if isinstance(c, type) and issubclass(c, _events.EventBase) and c is not _events.EventBase
    }
    assert set(members) == classes
    tags = [c.__struct_config__.tag for c in members]
    assert len(set(tags)) == len(tags)
    for cls in members:
        assert getattr(respflow, cls.__name__) is cls


# Loaded by `import respflow` (and a replay) only if something went wrong with the laziness.
HEAVY = ("openai", "httpx2", "anyio", "hypercorn", "starlette", "structlog", "trio")


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.splitlines()[-1].split())


def test_import_respflow_loads_only_the_core() -> None:
    loaded = loaded_after("import respflow\nrespflow.Assembler().feed(b'')")
    assert not loaded & set(HEAVY)


def test_respflow_replay_loads_neither_the_sdk_nor_anyio() -> None:
    code = (
        "import contextlib, io\nfrom respflow._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):"
        "\n    main(['replay', '--color', 'never'])"
    )
    assert not loaded_after(code) & set(HEAVY)


def test_a_lazy_name_loads_its_floor_on_first_use() -> None:
    loaded = loaded_after("import respflow\nrespflow.Pipeline")
    assert "anyio" in loaded
    assert "openai" not in loaded


def _public(module: types.ModuleType) -> dict[str, object]:
    names: list[str] = getattr(module, "__all__", [])
    return {name: getattr(module, name) for name in names if name != "__version__"}


def test_every_public_class_and_function_says_what_it_is() -> None:
    import respflow.testing

    undocumented = []
    for module in (respflow, respflow.testing):
        for name, value in _public(module).items():
            if isinstance(value, type):
                own = value.__dict__.get("__doc__")
            elif callable(value) and hasattr(value, "__code__"):
                own = value.__doc__
            else:
                continue  # constants and type aliases: their docs are in the source
            if not own or len(own.split()) < 5:
                undocumented.append(f"{module.__name__}.{name}")
    assert not undocumented


def test_the_readme_public_api_lists_exactly_what_is_exported() -> None:
    import re
    from pathlib import Path

    import respflow.testing

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("### Public API", 1)[1].split("\n### ", 1)[0]
    listed: set[str] = set()
    for row in re.findall(r"^\| (.*?) \|", table, re.M):
        testing = "respflow.testing." in row
        for code in re.findall(r"`([^`]*)`", row):
            name = re.match(r"(?:respflow\.testing\.)?([A-Za-z_]\w*)", code)
            if name is not None:
                listed.add(("testing." if testing else "") + name.group(1))
    events = {
        c.__name__
        for c in vars(_events).values()
        if isinstance(c, type) and issubclass(c, _events.EventBase) and c is not _events.EventBase
    }
    exported = {n for n in _public(respflow) if n not in events}
    exported |= {"testing." + n for n in _public(respflow.testing)}
    assert listed == exported
