"""Settings shared by every test directory."""

from __future__ import annotations

import logging
import os

from hypothesis import HealthCheck, settings

# No property test is timed: hypothesis's deadline and its too_slow health check measure
# the machine (a loaded CI runner fails them), not respflow.
untimed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI explores the same examples on every run, so that a red CI means the change broke
# something rather than that the search was lucky; a developer's run (no CI in the
# environment) draws new examples each time, and RESPFLOW_HYPOTHESIS=hunt draws many more.
settings.register_profile("default", parent=untimed)
settings.register_profile("ci", parent=untimed, derandomize=True, print_blob=True)
settings.register_profile("hunt", parent=untimed, max_examples=2000, print_blob=True)
settings.load_profile(
    os.environ.get("RESPFLOW_HYPOTHESIS") or ("ci" if os.environ.get("CI") else "default")
)


class _NotHypothesisStopping(logging.Filter):
    """Drops asyncio's report of a test task that ended in hypothesis's StopTest (an
    example that ran out of data, inside anyio's runner): nothing went wrong, and
    formatting its traceback on CPython 3.11.7 and older can leave the parser's recursion
    count off, so that pytest's next import of a test module fails with "AST constructor
    recursion depth mismatch" (CPython gh-106905)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "StopTest"


logging.getLogger("asyncio").addFilter(_NotHypothesisStopping())
