"""The fixtures are in redis_server.py (see its docstring for why)."""

from redis_server import anyio_backend, prefix, redis_url

__all__ = ["anyio_backend", "prefix", "redis_url"]
