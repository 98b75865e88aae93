"""respflow in a web page: code as it is written, its output, the answer, working downloads.

    python examples/web-ui/app.py              # against respflow's mock API: no key needed
    python examples/web-ui/app.py --live       # against the API (OPENAI_API_KEY, ...)

then open http://127.0.0.1:8000. ``respflow.app`` does the work under ``/respflow``: the
page posts its prompt to ``/respflow/responses``, follows the ``events_url`` it gets back
with ``EventSource`` (resuming with Last-Event-ID after a drop) and downloads the files by
the URLs the events carry. This file only says who may start responses (browsers that
loaded the page: a session cookie) and what they may choose (the prompt, nothing else).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import respflow
from respflow.testing import MockServer, Recording

HERE = Path(__file__).resolve().parent
TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
COOKIE = "respflow_demo"


def create_app(
    *, live: bool = False, files_dir: Path | str = "respflow-files", pace: float = 0.02
) -> Starlette:
    """The app. Without ``live`` it starts a mock Responses API serving respflow's sample."""
    sessions: set[str] = set()
    model = os.environ.get("RESPFLOW_MODEL", "gpt-5")

    def signed_in(request: Request) -> bool:
        return request.cookies.get(COOKIE) in sessions

    def prompt_only(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return {"model": model, "input": str(body.get("input") or ""), "tools": TOOLS}

    broker = respflow.MemoryBroker()
    gateway = respflow.app(
        broker,
        files=files_dir,
        secret=secrets.token_bytes(32),
        authorize=signed_in,
        prepare=prompt_only,
        prefix="/respflow",
    )

    async def index(request: Request) -> Response:
        page = FileResponse(HERE / "static" / "index.html")
        session = secrets.token_urlsafe(16)
        sessions.add(session)
        page.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return page

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(await _client(live, pace, stack))
            gateway.runner = await stack.enter_async_context(respflow.Runner(client, broker))
            yield

    return Starlette(
        routes=[
            Route("/", index),
            Mount("/static", app=StaticFiles(directory=HERE / "static")),
            Mount("/respflow", app=gateway),
        ],
        lifespan=lifespan,
    )


async def _client(live: bool, pace: float, stack: contextlib.AsyncExitStack) -> Any:
    if live:
        return openai.AsyncOpenAI()
    samples = resources.files("respflow").joinpath("samples")
    recording = Recording.from_bytes(samples.joinpath("code_interpreter.sse").read_bytes())
    folder = stack.enter_context(resources.as_file(samples.joinpath("files")))
    mock = await stack.enter_async_context(MockServer(recording, files=folder, pace=pace))
    return openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=mock.openai_api_key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", action="store_true", help="use the real API")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    async def serve() -> None:
        from respflow.testing import LoopbackServer

        async with LoopbackServer(create_app(live=args.live), port=args.port) as server:
            print(f"open {server.url}", flush=True)
            await anyio.sleep_forever()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve)


if __name__ == "__main__":
    main()
