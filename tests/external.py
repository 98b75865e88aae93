"""The real recorded streams under ``../shared/fixtures/external/``, read in their own formats.

The files are other projects' test data (see their SOURCES.md); they are read from the
shared folder where present and never copied into this repository.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "external"


@dataclass(frozen=True)
class Recording:
    """One response body found in a fixture file."""

    source: str
    kind: str  # "stream" (SSE or JSONL bytes) or "response" (non-streaming JSON)
    data: bytes
    suspect: bool

    @property
    def id(self) -> str:
        return self.source


def suspect_files() -> set[str]:
    """Files SOURCES.md marks as hand-written or edited: not ground truth."""
    sources = ROOT / "SOURCES.md"
    names: set[str] = set()
    if not sources.exists():
        return names
    section = ""
    for line in sources.read_text().splitlines():
        if line.startswith("## `"):
            section = line.split("`")[1].rstrip("/")
        match = re.match(r"\| `([^`]+)` \|", line)
        if match and "SUSPECT" in line:
            names.add(f"{section}/{match.group(1)}")
    return names


def _vcr(path: Path) -> list[tuple[str, bytes]]:
    doc = yaml.safe_load(path.read_text())
    bodies: list[tuple[str, bytes]] = []
    for interaction in doc.get("interactions", []):
        response = interaction.get("response", {})
        body = response.get("body", {})
        if body.get("string"):
            text = body["string"]
            bodies.append(("stream" if _is_sse(text) else "json", text.encode()))
        elif "parsed_body" in response:
            bodies.append(("json", json.dumps(response["parsed_body"]).encode()))
    return bodies


def _test_proxy(path: Path) -> list[tuple[str, bytes]]:
    doc = json.loads(path.read_text())
    bodies: list[tuple[str, bytes]] = []
    for entry in doc.get("Entries", []):
        body = entry.get("ResponseBody")
        if isinstance(body, list) and body and all(isinstance(x, str) for x in body):
            bodies.append(("stream", "".join(body).encode()))
        elif isinstance(body, dict):
            bodies.append(("json", json.dumps(body).encode()))
    return bodies


def _is_sse(text: str) -> bool:
    return text.lstrip().startswith(("event:", "data:"))


def recordings() -> list[Recording]:
    if not ROOT.exists():
        return []
    suspect = suspect_files()
    found: list[Recording] = []
    for path in sorted(ROOT.glob("*/*")):
        name = f"{path.parent.name}/{path.name}"
        if path.name.endswith(".chunks.txt"):
            bodies = [("stream", path.read_bytes())]
        elif path.suffix == ".yaml":
            bodies = _vcr(path)
        elif path.suffix == ".json" and path.parent.name == "openai__openai-dotnet":
            bodies = _test_proxy(path)
        elif path.suffix == ".json":
            bodies = [("json", path.read_bytes())]
        else:
            continue
        for i, (kind, data) in enumerate(bodies):
            if kind == "json":
                if not _json_ok(data.decode(errors="replace")):
                    continue  # a downloaded container file, not an API body
                obj: Any = json.loads(data)
                if not (isinstance(obj, dict) and obj.get("object") == "response"):
                    continue  # an error body or some other API object
                kind = "response"
            source = name if len(bodies) == 1 else f"{name}#{i}"
            found.append(Recording(source, kind, data, name in suspect))
    return found


def wire_events(recording: Recording) -> list[dict[str, Any]]:
    """The recording's events parsed plainly (json.loads), independent of respflow."""
    text = recording.data.decode()
    if _is_sse(text):
        events = []
        for block in re.split(r"\r?\n\r?\n", text):
            data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
            if data:
                events.append(json.loads("\n".join(data)))
        return events
    return [json.loads(line) for line in text.splitlines() if line.strip() and _json_ok(line)]


def _json_ok(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
