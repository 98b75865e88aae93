"""How long a producer's lease on a response lasts, unless it renews it.

Its length weighs two failures. Too short, and a producer that is alive but paused
(a long GC, a frozen VM, an event loop held up, a Redis failover) loses its response to
another instance: a foreground response, which the API cannot replay, is then ended with
``stream.truncated`` though nothing was wrong. Too long, and the readers of a producer
that really died wait that long for a successor. The first loses an answer; the second
only delays one (a background response continues where its log stops). So: ten
seconds, renewed every third of it, so a pause of up to about six and a half seconds
costs nothing, and a successor takes over between about seven and thirteen seconds after
a death. Light on purpose: the command line reads it to parse its options.
"""

from __future__ import annotations

__all__ = ["LEASE_TTL"]

LEASE_TTL = 10.0
"""The default ``lease_ttl`` of a :class:`respflow.Runner` and of ``respflow serve``."""
