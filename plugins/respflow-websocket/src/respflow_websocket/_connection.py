"""A websocket client connection: the ``websockets`` sans-I/O protocol over anyio streams.

The library's own client is asyncio-only; its protocol objects do no I/O, so driving
them over ``anyio.connect_tcp`` gives one implementation for asyncio and trio.
"""

from __future__ import annotations

import select
import ssl
from collections.abc import Mapping
from types import TracebackType

import anyio
from anyio.abc import ByteStream, SocketAttribute
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["Closed", "Connection"]


class Closed(Exception):
    """The connection is closed; ``code`` and ``reason`` are what the server said."""

    def __init__(self, code: int | None, reason: str) -> None:
        said = f" ({code})" if code else ""
        super().__init__(
            f"websocket closed{said}: {reason}" if reason else f"websocket closed{said}"
        )
        self.code = code
        self.reason = reason


class Connection:
    """``async with Connection(url) as ws: await ws.send_text(...); await ws.receive_text()``"""

    def __init__(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._uri = parse_uri(url)
        self._protocol = ClientProtocol(self._uri)
        self._stream: ByteStream | None = None
        self._texts: list[str] = []
        self._eof = False

    async def __aenter__(self) -> Connection:
        uri = self._uri
        with anyio.fail_after(self.timeout):
            stream: ByteStream
            if uri.secure:
                stream = await anyio.connect_tcp(
                    uri.host,
                    uri.port,
                    ssl_context=ssl.create_default_context(),
                    tls_hostname=uri.host,
                )
            else:
                stream = await anyio.connect_tcp(uri.host, uri.port)
            self._stream = stream
            request = self._protocol.connect()
            for name, value in self.headers.items():
                request.headers[name] = value
            self._protocol.send_request(request)
            await self._flush()
            while self._protocol.state is State.CONNECTING and not self._eof:
                await self._read()
        # A server may accept and close at once (both in one read): that is a connection
        # that closed, for receive_text to report, not a failed handshake.
        failed = self._protocol.handshake_exc
        if failed is not None or self._state() is State.CONNECTING:
            await self._abort()
            raise Closed(None, f"the handshake failed: {failed or 'the server closed'}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def poll(self) -> None:
        """Take in whatever the server has sent (a close, a ping) without waiting."""
        stream = self._stream
        if stream is None:
            return
        sock = stream.extra(SocketAttribute.raw_socket, None)
        while sock is not None and not self._eof and self._protocol.state is not State.CLOSED:
            try:
                readable = select.select([sock], [], [], 0)[0]
            except (ValueError, OSError):  # the transport closed the socket under us
                self._eof = True
                return
            if not readable:
                return
            await self._read()

    @property
    def open(self) -> bool:
        return self._protocol.state is State.OPEN and not self._eof

    async def send_text(self, text: str) -> None:
        if self._protocol.state is not State.OPEN:
            raise Closed(self._protocol.close_code, self._protocol.close_reason or "")
        self._protocol.send_text(text.encode())
        await self._flush()

    async def receive_text(self) -> str:
        """The next text message; raises :class:`Closed` when the server closes."""
        while not self._texts:
            if self._protocol.state is State.CLOSED or self._eof:
                raise Closed(self._protocol.close_code, self._protocol.close_reason or "")
            await self._read()
        return self._texts.pop(0)

    async def aclose(self) -> None:
        if self._stream is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            if self._state() is State.OPEN:
                self._protocol.send_close(1000)
                await self._flush()
                while self._state() is State.CLOSING and not self._eof:
                    await self._read()
        await self._abort()

    def _state(self) -> State:
        return self._protocol.state

    async def _abort(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _flush(self) -> None:
        assert self._stream is not None
        for data in self._protocol.data_to_send():
            if not data:
                continue  # "close the write side": the stream closes with the connection
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                self._protocol.receive_eof()
                raise Closed(None, f"the connection broke: {exc!r}") from exc

    async def _read(self) -> None:
        assert self._stream is not None
        try:
            data = await self._stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._eof = True
            if self._protocol.state is not State.CLOSED:
                self._protocol.receive_eof()
        else:
            self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._texts.append(bytes(event.data).decode())
        if not self._eof:
            await self._flush()  # pongs, close replies
