"""``respflow files verify DIR``: are the saved files still what was saved?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._files.manifest import FilesReport

__all__ = ["add_parser", "files"]

_KIND_WIDTH = len("unreadable")


def add_parser(commands: Any, *, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "files",
        help="check saved files against their manifests",
        description="Work with the files respflow saved (--fetch-files, respflow.app, demo).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        parents=parents,
        help="re-hash saved files against their manifests",
        description=(
            "Re-hash every file in DIR against the manifest.json of its response folder "
            "and print a line for each file that changed, is missing, or is there without "
            "being listed (any file respflow did not save there, and every file of a "
            "folder without a manifest), or whose manifest is unreadable, then a summary. "
            "DIR is the folder files were saved into (respflow saves into ./respflow-files "
            "unless told otherwise) or one response's folder in it. Exits 0 when every "
            "file matches, 1 when one does not, 2 when DIR is not a folder."
        ),
    )
    verify.add_argument("dir", type=Path, metavar="DIR")


def files(args: argparse.Namespace) -> int:
    from .._files.manifest import verify_files  # here: building the parser stays light

    if not args.dir.is_dir():
        print(f"respflow files: {args.dir} is not a folder", file=sys.stderr)
        return 2
    report = verify_files(args.dir)
    out = sys.stdout
    for problem in report.problems:
        out.write(f"{problem.kind:<{_KIND_WIDTH}}  {problem.file}: {problem.detail}\n")
    out.write(_summary(report) + "\n")
    return 0 if report.ok else 1


def _summary(report: FilesReport) -> str:
    where = f"{report.files} file{_s(report.files)} in {report.folders} folder{_s(report.folders)}"
    if report.ok:
        return f"ok: {where}, each as its manifest lists it"
    counts: dict[str, int] = {}
    for problem in report.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    said = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{len(report.problems)} problem{_s(len(report.problems))} ({said}); checked {where}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
