"""The HTTP side of suprhook: `create_app()` for a standalone service, `init_app()` to mount it."""
from .app import create_app
from .blueprint import bp, init_app
from .endpoints import Endpoint

__all__ = ["Endpoint", "bp", "create_app", "init_app"]
