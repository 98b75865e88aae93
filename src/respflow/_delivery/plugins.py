"""Sinks by name: the ``respflow.sinks`` entry point group.

A spec names a sink and configures it: ``jsonl:events.jsonl``, ``log``, or a URL such as
``ws://host/path`` (its scheme is the name). A distribution adds sinks by declaring, in
its ``pyproject.toml``::

    [project.entry-points."respflow.sinks"]
    ws = "respflow_websocket:sink_from_spec"

where the object is a factory ``(argument: str) -> Sink`` (for a URL, the argument is the
whole URL). respflow's own sinks are registered the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .._exceptions import UsageError
from .pipeline import Sink
from .redaction import redact_text
from .sinks import jsonl_sink, log_sink

__all__ = ["available_sinks", "sink_from_spec"]

GROUP = "respflow.sinks"

# Also known without installed metadata (running from a source tree).
_BUILTIN: dict[str, Callable[[str], Any]] = {"jsonl": jsonl_sink, "log": log_sink}


def _factories() -> dict[str, Any]:
    found: dict[str, Any] = dict(_BUILTIN)
    for point in entry_points(group=GROUP):
        found[point.name] = point
    return found


def available_sinks() -> list[str]:
    """The sink names a spec may use, built-ins and installed plugins."""
    return sorted(_factories())


def sink_from_spec(spec: str) -> Sink:
    """The sink a spec such as ``jsonl:out.jsonl``, ``log`` or ``ws://host/path`` names.

    Raises:
        UsageError: no sink has that name (the message lists those that do), or the
            plugin would not load or refused its argument.
    """
    if "://" in spec:
        name, argument = spec.split("://", 1)[0], spec
    else:
        name, _, argument = spec.partition(":")
    factories = _factories()
    factory = factories.get(name)
    if factory is None:
        raise UsageError(
            f"no sink is called {name!r}; available: {', '.join(sorted(factories))} "
            f"(plugins add more through the {GROUP!r} entry point group)"
        )
    if not callable(factory) or hasattr(factory, "load"):
        try:
            factory = factory.load()
        except Exception as exc:
            raise UsageError(f"the sink plugin {name!r} failed to load: {exc!r}") from exc
    try:
        sink = factory(argument)
    except UsageError:
        raise
    except Exception as exc:
        # A spec may be a URL with its credential in it: the message never repeats one.
        refused = redact_text(f"the sink {name!r} refused {argument!r}: {exc}")
        raise UsageError(refused) from exc
    if not isinstance(sink, Sink):
        raise UsageError(f"the sink plugin {name!r} made {sink!r}, which has no send/aclose")
    return sink
