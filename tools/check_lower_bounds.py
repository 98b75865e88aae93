"""Check that constraints/lower-bounds.txt pins every direct dependency to its declared bound.

The lower-bound CI run installs with that file; if a pyproject.toml raises or adds a bound
and the file is not updated, the run would test something other than what users are
promised. The lint and browser extras are tools CI runs at their newest release only.

    python3 tools/check_lower_bounds.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "lower-bounds.txt"
TOOLS_ONLY = {"lint", "browser", "dev"}
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """``24.1`` and ``24.1.0`` are the same release."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def declared() -> dict[str, tuple[str, str]]:
    """Each bounded dependency's lower bound, and where it is declared."""
    bounds: dict[str, tuple[str, str]] = {}
    for path in [ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml"))]:
        project = tomllib.loads(path.read_text())["project"]
        groups = {"dependencies": project.get("dependencies", [])}
        for extra, requirements in project.get("optional-dependencies", {}).items():
            if extra not in TOOLS_ONLY:
                groups[f"[{extra}]"] = requirements
        for group, requirements in groups.items():
            for requirement in requirements:
                match = REQUIREMENT.match(requirement)
                assert match, f"{path.name} {group}: cannot read {requirement!r}"
                name, _, spec = match.groups()
                if normalized(name).startswith("respflow"):
                    continue
                bound = re.search(r">=\s*([0-9][0-9.]*)", spec)
                where = f"{path.relative_to(ROOT)} {group}"
                if bound is None:
                    raise SystemExit(f"{where}: {requirement!r} has no lower bound (>=)")
                key = normalized(name)
                if key in bounds and release(bounds[key][0]) != release(bound.group(1)):
                    raise SystemExit(
                        f"{where}: {name}>={bound.group(1)}, but {bounds[key][1]} says "
                        f">={bounds[key][0]}: declare one bound"
                    )
                bounds[key] = (bound.group(1), where)
    return bounds


def pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalized(name)] = version.strip()
    return pins


def main() -> int:
    bounds, pins = declared(), pinned()
    problems = [
        f"{name}: declared >={bound} in {where}, pinned {pins.get(name, 'nowhere')}"
        for name, (bound, where) in sorted(bounds.items())
        if name not in pins or release(pins[name]) != release(bound)
    ]
    problems += [f"{name}: pinned but not a declared dependency" for name in pins.keys() - bounds]
    for problem in problems:
        print(f"{CONSTRAINTS.relative_to(ROOT)}: {problem}", file=sys.stderr)
    if not problems:
        print(f"lower bounds: {len(bounds)} dependencies, each pinned to its declared bound")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
