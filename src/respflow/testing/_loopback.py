"""Any ASGI app on ``127.0.0.1`` at a free port, served by hypercorn on asyncio or trio."""

from __future__ import annotations

import logging
import socket
import sys
from types import TracebackType
from typing import Any

import anyio

from .._exceptions import UsageError

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """``async with LoopbackServer(app) as server:`` serves ``app`` at ``server.url``.

    The socket is bound and listening before ``async with`` returns, so the port is known
    and clients may connect at once. Leaving the block stops the server (open
    connections get ``graceful_timeout`` seconds).
    """

    def __init__(
        self,
        app: Any,
        *,
        port: int = 0,
        log: logging.Logger | None = None,
        graceful_timeout: float = 0.5,
    ) -> None:
        self.app = app
        self.port = port
        self._log = log or logging.getLogger("respflow.testing")
        self._graceful_timeout = graceful_timeout
        self._stop: anyio.Event | None = None
        self._group: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackServer:
        try:
            from hypercorn.config import Config
        except ImportError:
            raise UsageError(
                "serving on loopback needs hypercorn, which is not installed: "
                "pip install 'respflow[mock]'"
            ) from None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
        config.errorlog = self._log
        config.graceful_timeout = self._graceful_timeout
        config.keep_alive_timeout = 30.0
        self._stop = anyio.Event()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._serve, config)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stop is not None
        self._stop.set()
        # The body's own exception is left to propagate as it is, not wrapped in a group:
        # the server task stops on _stop alone, so the group has nothing to cancel.
        await self._group.__aexit__(None, None, None)

    async def _serve(self, config: Any) -> None:
        assert self._stop is not None
        # hypercorn must shut down on its own terms (on asyncio it fails if cancelled while
        # shutting down): it stops when _stop is set, within graceful_timeout.
        with anyio.CancelScope(shield=True):
            if _on_trio():
                from hypercorn.trio import serve as trio_serve

                await trio_serve(self.app, config, shutdown_trigger=self._stop.wait)
            else:
                from hypercorn.asyncio import serve as asyncio_serve

                await asyncio_serve(self.app, config, shutdown_trigger=self._stop.wait)


def _on_trio() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True
