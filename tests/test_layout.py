"""The rule of the house: a module imports only from its own floor or below, and the
sans-I/O core imports nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "respflow"

# Lowest first. The public face (__init__, __main__) sits above them all and re-exports.
FLOORS = ["ground", "_core", "_sources", "_files", "_delivery", "_protocols", "_server"]
FLOORS += ["testing", "_cli"]
GROUND = {"_events", "_exceptions"}

# The core is sans-I/O: no event loop, no network, no clock, no HTTP stack.
NOT_IN_CORE = {"anyio", "asyncio", "trio", "socket", "time", "openai", "httpx", "httpx2"}
NOT_IN_CORE |= {"starlette", "hypercorn", "structlog", "websockets"}


def modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts not in {("__init__.py",), ("__main__.py",)}
    ]


def floor_of(parts: tuple[str, ...]) -> str:
    """The floor of a module given by its path inside the package."""
    if len(parts) == 1:
        name = parts[0].removesuffix(".py")
        assert name in GROUND, f"respflow/{parts[0]} is on no floor: move it into a subpackage"
        return "ground"
    assert parts[0] in FLOORS, f"respflow/{parts[0]} is not a floor of the layout"
    return parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, as absolute dotted names, with its line."""
    package = ("respflow", *path.relative_to(PACKAGE).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if node.module is None:
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def floor_of_import(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "respflow" or len(parts) == 1:
        return None
    inner = parts[1:]
    if inner[0] in GROUND:
        return "ground"
    return inner[0] if inner[0] in FLOORS else None


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_floor_or_below(path: Path) -> None:
    own = FLOORS.index(floor_of(path.relative_to(PACKAGE).parts))
    for line, name in imports(path):
        floor = floor_of_import(name)
        if floor is not None:
            assert FLOORS.index(floor) <= own, (
                f"{path.relative_to(PACKAGE)}:{line} imports {name}, a floor above its own"
            )
        assert name != "respflow", f"{path.relative_to(PACKAGE)}:{line} imports the public face"


@pytest.mark.parametrize("path", sorted((PACKAGE / "_core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_nothing_that_does_io(path: Path) -> None:
    for line, name in imports(path):
        top = name.split(".")[0]
        assert top not in NOT_IN_CORE, f"_core/{path.name}:{line} imports {name}"


def test_the_rule_is_checked_on_a_real_import() -> None:
    # The checker itself: a relative import two floors up resolves to the right floor.
    found = [name for _, name in imports(PACKAGE / "_files" / "fetcher.py")]
    assert "respflow._sources.openai" in found
    assert "respflow._events" in found
    assert floor_of_import("respflow._sources.openai") == "_sources"
