"""The HTTP API (aiohttp): the worker bridge, submission, reads and operations."""

from .app import Api, ApiSettings, make_app

__all__ = ["Api", "ApiSettings", "make_app"]
