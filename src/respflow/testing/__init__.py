"""Helpers for testing code that consumes respflow: realistic streams without the API.

- :class:`StreamBuilder`, :func:`to_sse`, :func:`to_jsonl`: write wire streams in code.
- :class:`MockServer`: a Responses API on loopback HTTP replaying a :class:`Recording`
  (needs the ``mock`` extra: ``pip install 'respflow[mock]'``).
- :class:`LoopbackServer`: any ASGI app on loopback, for tests of your own routes.
"""

from ._builder import StreamBuilder, to_jsonl, to_sse
from ._loopback import LoopbackServer
from ._memory import MemorySink
from ._mock_server import MockServer, RecordedRequest
from ._recorded import RecordedEvent, Recording

__all__ = [
    "LoopbackServer",
    "MemorySink",
    "MockServer",
    "RecordedEvent",
    "RecordedRequest",
    "Recording",
    "StreamBuilder",
    "to_jsonl",
    "to_sse",
]
