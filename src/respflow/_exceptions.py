"""respflow's exceptions.

RespflowError
├── UsageError              the library was called the wrong way (feed after close, ...)
├── RecordingError          a recording could not be read at all (unknown format, API error body)
├── ConnectionFailed        the API could not be reached, after the client's own retries
├── TooOld                  a reader's cursor is older than the history a broker or hub keeps
├── ResponseNotFound        a broker keeps no events of that response (unknown or expired)
├── LeaseLost               a producer published a response whose lease it no longer holds
└── HTTPStatusError         the API answered a request with an error status, before any event
    ├── AuthenticationFailed    401 / 403
    ├── NotFound                404
    │   └── ResumeExpired       404 on resuming a background response
    ├── RateLimited             429 (``retry_after`` from the ``Retry-After`` header)
    └── ServerError             5xx

Bad *content* in a stream never raises: it becomes a ``stream.error`` event, and the
stream goes on. Exceptions are for what the caller can fix, and are raised only before a
stream's first event; once events flow, failures arrive as events so none already
received is lost.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "HTTPStatusError",
    "LeaseLost",
    "NotFound",
    "RateLimited",
    "RecordingError",
    "RespflowError",
    "ResponseNotFound",
    "ResumeExpired",
    "ServerError",
    "TooOld",
    "UsageError",
]


class RespflowError(Exception):
    """Root of every exception respflow raises on purpose."""


class UsageError(RespflowError):
    """respflow was used in a way it does not support; the message says what to do instead."""


class RecordingError(RespflowError):
    """A recording is empty, in a format respflow does not read, or holds no response."""


class ConnectionFailed(RespflowError):
    """No HTTP answer at all (DNS, refused, TLS, timeout), after the client's own retries."""


class TooOld(RespflowError):
    """The cursor a reader asked to resume after is no longer in the history."""


class ResponseNotFound(RespflowError):
    """A broker keeps no events of this response: it is unknown, or it expired.

    Not :class:`NotFound`, which is the API's 404 and carries its HTTP details.
    """


class LeaseLost(RespflowError):
    """A producer's lease on a response lapsed or was taken; it must stop publishing."""


class HTTPStatusError(RespflowError):
    """The API refused a request. The message has the status, the API's words and the request id.

    Attributes:
        status_code: the HTTP status.
        api_message: the ``error.message`` the API sent ("" if none).
        code: the API's ``error.code`` (or ``error.type``), if any.
        request_id: the ``x-request-id`` header, for a support ticket.
        retry_after: seconds the server asked to wait (``Retry-After``), if it said.
    """

    hint = "check the request against the API reference"

    def __init__(
        self,
        status_code: int,
        api_message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        action: str = "the request",
    ) -> None:
        self.status_code = status_code
        self.api_message = api_message
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        said = f": {api_message}" if api_message else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"{action} failed with HTTP {status_code}{said}{rid}; {self._hint()}")

    def _hint(self) -> str:
        return self.hint


class AuthenticationFailed(HTTPStatusError):
    """401 or 403: the key or token was refused, or does not reach this resource."""

    hint = (
        "check the key: OPENAI_API_KEY for api.openai.com; for Azure, the resource's key "
        "(or an Entra token) and that the endpoint is that resource's"
    )


class NotFound(HTTPStatusError):
    """404: no such response, container or file here, or a base URL with the wrong path."""

    hint = "check the id and the base URL (OpenAI /v1/..., Azure /openai/v1/...)"


class ResumeExpired(NotFound):
    """The response cannot be streamed again: not a background stream, or no longer kept."""

    hint = (
        "only responses created with background=True and stream=True can be resumed, and "
        "only for a limited time (about 10 minutes unless stored); fetch the finished "
        "response with GET /v1/responses/{id} instead, or run the request again"
    )


class RateLimited(HTTPStatusError):
    """429: wait ``retry_after`` seconds when the server gave it; without it, usually a
    quota to raise rather than a rate to wait out."""

    def _hint(self) -> str:
        if self.retry_after is not None:
            return (
                f"the server asks to wait {self.retry_after:g} s; the client's own retries "
                "(max_retries) were used up first"
            )
        return (
            "no Retry-After was given, which usually means a quota that needs attention "
            "(billing, limits) rather than waiting"
        )


class ServerError(HTTPStatusError):
    """5xx: the API failed after the client's own retries; trying again later may work."""

    hint = "the API failed; the client's own retries (max_retries) were used up, try again later"


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception ``group`` holds, however deeply nested, or None if it holds more.

    Task groups wrap what their tasks raise; a caller that wrote ``except
    AuthenticationFailed`` must still catch a lone typed error as itself.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending and len(leaves) < 2:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        else:
            leaves.append(current)
    return leaves[0] if len(leaves) == 1 and not pending else None
