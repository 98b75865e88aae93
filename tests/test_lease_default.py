"""One lease length, whichever way a producer is started: a Runner of one's own and
``respflow serve`` hand a dead producer's responses over after the same time."""

from __future__ import annotations

import inspect

from respflow import Runner
from respflow._cli.main import _parser


def test_serve_and_a_runner_of_ones_own_default_to_the_same_lease() -> None:
    runner_default = inspect.signature(Runner).parameters["lease_ttl"].default
    serve_default = _parser(["serve"]).parse_args(["serve"]).lease_ttl
    assert serve_default == runner_default
