"""Helpers for testing code that consumes respflow: realistic streams without the API.

- :class:`StreamBuilder`, :func:`to_sse`, :func:`to_jsonl`: write wire streams in code.
- :class:`MockServer`: a Responses API on loopback HTTP replaying a :class:`Recording`
  (needs the ``mock`` extra: ``pip install 'respflow[mock]'``).
- :class:`LoopbackServer`: any ASGI app on loopback, for tests of your own routes.
- :class:`BrokerConformance`: the tests every :class:`respflow.Broker` passes; subclass
  it to run them on yours (needs pytest, anyio's plugin and hypothesis).
- :class:`TakeoverConformance`: a response outlives its producer through your broker
  (a :class:`respflow.Runner` with ``takeover=True``); :class:`Stalled`: a producer
  whose broker calls stop getting through, as a killed process's do.
"""

import importlib
import typing

from ._builder import StreamBuilder, to_jsonl, to_sse
from ._loopback import LoopbackServer
from ._memory import MemorySink
from ._mock_server import MockServer, RecordedRequest
from ._recorded import RecordedEvent, Recording

if typing.TYPE_CHECKING:
    from ._broker_conformance import BrokerConformance, make_events
    from ._takeover_conformance import Stalled, TakeoverConformance

__all__ = [
    "BrokerConformance",
    "LoopbackServer",
    "MemorySink",
    "MockServer",
    "RecordedEvent",
    "RecordedRequest",
    "Recording",
    "Stalled",
    "StreamBuilder",
    "TakeoverConformance",
    "make_events",
    "to_jsonl",
    "to_sse",
]


def __getattr__(name: str) -> object:
    # The conformance suite imports pytest and hypothesis: only for those who ask for it.
    if name in {"BrokerConformance", "make_events"}:
        return getattr(importlib.import_module(f"{__name__}._broker_conformance"), name)
    if name in {"Stalled", "TakeoverConformance"}:
        return getattr(importlib.import_module(f"{__name__}._takeover_conformance"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
