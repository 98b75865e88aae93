"""The ``respflow`` command: replay, demo, stream and mock-server."""

from .main import main

__all__ = ["main"]
