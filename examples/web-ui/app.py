"""respflow in a web page: code as it is written, its output, the answer, working downloads.

    python examples/web-ui/app.py              # against respflow's mock API: no key needed
    python examples/web-ui/app.py --live       # against the API (OPENAI_API_KEY, ...)

then open http://127.0.0.1:8000. One Starlette app does it all: ``POST /api/responses``
starts a response and follows it in the background (stream -> file fetcher -> link
rewriter -> hub); the page reads ``/events/{id}`` as server-sent events (resuming with
Last-Event-ID after a drop) and downloads files from ``/files/...``. A browser sees only
the responses it started (a cookie names them).
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
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route

import respflow
from respflow.testing import MockServer, Recording

HERE = Path(__file__).resolve().parent
TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
COOKIE = "respflow_demo"


def create_app(
    *, live: bool = False, files_dir: Path | str = "respflow-files", pace: float = 0.02
) -> Starlette:
    """The app. Without ``live`` it starts a mock Responses API serving respflow's sample."""
    hub = respflow.Hub()
    storage = respflow.LocalStorage(files_dir)
    owners: dict[str, set[str]] = {}  # browser token -> the responses it started
    state: dict[str, Any] = {}

    def authorize(request: Request, response_id: str) -> bool:
        token = request.cookies.get(COOKIE, "")
        return response_id in owners.get(token, set())

    async def follow(prompt: str, started: anyio.Event, box: dict[str, str]) -> None:
        client = state["client"]
        fetcher = respflow.FileFetcher(client, storage)
        rewriter = respflow.LinkRewriter("/files/{response_id}/{filename}")

        async def announced(events: respflow.EventStream) -> AsyncIterator[respflow.Event]:
            async for event in events:
                if not started.is_set():
                    box["response_id"] = event.response_id
                    started.set()
                yield event

        try:
            async with (
                respflow.stream(client, model=state["model"], input=prompt, tools=TOOLS) as events,
                respflow.Pipeline(hub, processors=[fetcher, rewriter]) as pipeline,
            ):
                await pipeline.run(announced(events))
        except respflow.RespflowError as exc:  # before the first event: tell the request
            box["error"] = str(exc)
        finally:
            started.set()

    async def create(request: Request) -> Response:
        body = await request.json()
        prompt = str(body.get("prompt") or "").strip()
        if not prompt:
            return JSONResponse({"error": "a prompt is needed"}, status_code=400)
        started, box = anyio.Event(), dict[str, str]()
        state["group"].start_soon(follow, prompt, started, box)
        with anyio.fail_after(60):
            await started.wait()
        if "response_id" not in box:
            return JSONResponse({"error": box.get("error", "no response")}, status_code=502)
        token = request.cookies.get(COOKIE) or secrets.token_urlsafe(16)
        owners.setdefault(token, set()).add(box["response_id"])
        answer = JSONResponse({"response_id": box["response_id"]})
        answer.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return answer

    async def index(request: Request) -> Response:
        return FileResponse(HERE / "static" / "index.html")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if live:
                state["client"] = openai.AsyncOpenAI()
                state["model"] = os.environ.get("RESPFLOW_MODEL", "gpt-5")
            else:
                samples = resources.files("respflow").joinpath("samples")
                recording = Recording.from_bytes(
                    samples.joinpath("code_interpreter.sse").read_bytes()
                )
                folder = stack.enter_context(resources.as_file(samples.joinpath("files")))
                mock = await stack.enter_async_context(
                    MockServer(recording, files=folder, pace=pace)
                )
                state["client"] = openai.AsyncOpenAI(
                    base_url=mock.openai_base_url, api_key=mock.openai_api_key
                )
                state["model"] = "gpt-5"
            await stack.enter_async_context(state["client"])
            state["group"] = await stack.enter_async_context(anyio.create_task_group())
            yield
            state["group"].cancel_scope.cancel()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/responses", create, methods=["POST"]),
            Mount("/static", app=_static()),
            Mount(
                "/",
                app=_merged(
                    respflow.events_app(hub, authorize=authorize), respflow.files_app(files_dir)
                ),
            ),
        ],
        lifespan=lifespan,
    )


def _static() -> Any:
    from starlette.staticfiles import StaticFiles

    return StaticFiles(directory=HERE / "static")


def _merged(events: Any, files: Any) -> Any:
    """One ASGI app for /events/... and /files/...."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        target = events if scope.get("path", "").startswith("/events/") else files
        await target(scope, receive, send)

    return app


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
