"""``respflow demo``: the whole path, on this machine, with no API key and no network.

A mock Responses API on loopback replays the bundled recording (a Code Interpreter run that
prints, draws a chart, saves a CSV, and an answer citing the CSV and linking the chart with
a bare sandbox link); the real openai SDK sends the request to it over HTTP; respflow reads
the bytes, renders the events as they arrive and saves the files the run produced.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from .. import _events as ev
from .._files.fetcher import fetch_files
from .._files.rewrite import LinkRewriter
from .._files.storage import LocalStorage
from .._sources.openai import stream
from .render import PrettyRenderer

__all__ = ["PROMPT", "SAMPLE", "demo"]

SAMPLE = "code_interpreter.sse"
PROMPT = "Roll two dice ten times, summarise the sums, chart them and save the rolls as a CSV."
_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]

_NEXT = """
What to try next:
  respflow replay --format jsonl        this run as normalized events, one JSON object a line
  respflow mock-server                  this mock API on a port you choose, to build a UI against
  respflow stream --model gpt-5 "..."   a live run (OPENAI_API_KEY, or AZURE_OPENAI_ENDPOINT
                                        with AZURE_OPENAI_API_KEY)
  README.md                             the event contract and respflow.stream() in Python
"""


async def demo(
    write: Callable[[str], object], *, pace: float, color: bool, files_dir: Path
) -> None:
    """Serve the sample, stream it through the SDK, save its files, render it with ``write``."""
    import openai

    from ..testing import MockServer, Recording

    samples = resources.files("respflow").joinpath("samples")
    recording = Recording.from_bytes(samples.joinpath(SAMPLE).read_bytes())
    renderer = PrettyRenderer(write, color=color)
    saved: list[ev.FileSaved] = []
    answers: list[ev.MessageCompleted] = []
    storage = LocalStorage(files_dir)
    # Links in the answer go to where the files are being saved, as file:// URLs: the
    # storage says which folder a response id's files go to.
    rewriter = LinkRewriter(file_url=lambda rid, name: storage.path_for(rid, name).as_uri())
    with resources.as_file(samples.joinpath("files")) as folder:
        async with MockServer(recording, files=folder, pace=pace) as mock:
            write(
                f"respflow demo: a mock Responses API at {mock.url} replays a recorded Code "
                "Interpreter run;\nthe openai SDK sends the request, respflow reads the "
                "stream, prints its events and saves the files.\n\n"
            )
            client = openai.AsyncOpenAI(
                base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
            )
            async with (
                client,
                stream(client, model="gpt-5", input=PROMPT, tools=_TOOLS) as events,
                fetch_files(events, client, storage) as events_and_files,
            ):
                async for event in events_and_files:
                    for out in rewriter.feed(event):
                        renderer.render(out)
                        if isinstance(out, ev.FileSaved):
                            saved.append(out)
                        elif isinstance(out, ev.MessageCompleted):
                            answers.append(out)
    if saved:
        write(f"\nThe {len(saved)} files the run produced are in {storage.root}:\n")
        for event in saved:
            maker = f", made by {event.produced_by}" if event.produced_by else ""
            write(f"  {event.location}  ({event.resolved_by}{maker})\n")
        verify = f"respflow files verify {shlex.quote(str(storage.root))}"
        write(f"(each folder's manifest.json lists them; check them later: {verify})\n")
    for answer in answers:
        write(f"\nThe answer, its links pointing at the saved files:\n{answer.text}\n")
    write(_NEXT)
