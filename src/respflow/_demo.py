"""``respflow demo``: the whole path, on this machine, with no API key and no network.

A mock Responses API on loopback replays the bundled recording (a Code Interpreter run that
prints, draws a chart, saves a CSV, and an answer citing the CSV and linking the chart with
a bare sandbox link); the real openai SDK sends the request to it over HTTP; respflow reads
the bytes and renders the events as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from . import _events as ev
from ._openai import stream
from ._render import PrettyRenderer

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


async def demo(write: Callable[[str], object], *, pace: float, color: bool) -> None:
    """Serve the sample, stream it through the SDK, render it with ``write``."""
    import openai

    from .testing import MockServer, Recording

    samples = resources.files("respflow").joinpath("samples")
    recording = Recording.from_bytes(samples.joinpath(SAMPLE).read_bytes())
    renderer = PrettyRenderer(write, color=color)
    containers: dict[str, None] = {}
    with resources.as_file(samples.joinpath("files")) as folder:
        async with MockServer(recording, files=folder, pace=pace) as mock:
            write(
                f"respflow demo: a mock Responses API at {mock.url} replays a recorded Code "
                "Interpreter run;\nthe openai SDK sends the request, respflow reads the "
                "stream and prints its events.\n\n"
            )
            client = openai.AsyncOpenAI(
                base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
            )
            async with client:
                async with stream(client, model="gpt-5", input=PROMPT, tools=_TOOLS) as events:
                    async for event in events:
                        renderer.render(event)
                        if isinstance(event, ev.CodeStarted) and event.container_id:
                            containers[event.container_id] = None
                for container_id in containers:
                    page = await client.containers.files.list(container_id)
                    names = ", ".join(sorted(f.path.rsplit("/", 1)[-1] for f in page.data))
                    write(
                        f"\nThe files the code saved are in container {container_id}: {names}.\n"
                        "Containers expire after about 20 idle minutes; respflow does not "
                        "save them to disk yet.\n"
                    )
    write(_NEXT)
