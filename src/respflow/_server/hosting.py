"""Serving an ASGI app on a host and port with hypercorn, on asyncio or trio."""

from __future__ import annotations

import logging
import socket
import sys
from types import TracebackType
from typing import Any

import anyio

from .._exceptions import UsageError

__all__ = ["Server", "listening_socket"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port) and listening."""
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range (0-65535; 0 picks a free one)")
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class Server:
    """``async with Server(app, host=..., port=...) as server:`` serves ``app`` at
    ``server.url`` until the block is left.

    The socket is bound and listening before ``async with`` returns, so the port is
    known (``port=0`` picks a free one) and clients may connect at once; an address in
    use raises ``OSError`` there. Leaving the block stops the server; open connections
    get ``graceful_timeout`` seconds.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log: logging.Logger | None = None,
        graceful_timeout: float = 0.5,
        fd: int | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.fd = fd
        """A socket already bound and listening, to serve on instead of binding one
        (several worker processes accept on the one socket their parent bound)."""
        self._log = log or logging.getLogger("respflow.server")
        self._graceful_timeout = graceful_timeout
        self._stop: anyio.Event | None = None
        self._group: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Server:
        try:
            from hypercorn.config import Config
        except ImportError:
            raise UsageError(
                "serving needs hypercorn, which is not installed: pip install 'respflow[mock]'"
            ) from None
        if self.fd is None:
            sock = listening_socket(self.host, self.port)
        else:
            sock = socket.socket(fileno=self.fd)
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
        config.errorlog = self._log
        config.accesslog = None
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
        # The body's own exception propagates as it is, not wrapped in a group: the
        # server task stops on _stop alone, so the group has nothing to cancel.
        await self._group.__aexit__(None, None, None)

    async def _serve(self, config: Any) -> None:
        assert self._stop is not None
        # hypercorn must shut down on its own terms (on asyncio it fails if cancelled
        # while shutting down): it stops when _stop is set, within graceful_timeout.
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
