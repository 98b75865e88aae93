"""Any ASGI app on ``127.0.0.1`` at a free port, served by hypercorn on asyncio or trio."""

from __future__ import annotations

import logging
from typing import Any

from .._server.hosting import Server

__all__ = ["LoopbackServer"]


class LoopbackServer(Server):
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
        super().__init__(
            app,
            host="127.0.0.1",
            port=port,
            log=log or logging.getLogger("respflow.testing"),
            graceful_timeout=graceful_timeout,
        )

    async def __aenter__(self) -> LoopbackServer:
        await super().__aenter__()
        return self
