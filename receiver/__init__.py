"""The HTTP side of suprhook: `create_app()` for a standalone service, `init_app()` to mount it."""
from .app import create_app
from .blueprint import bp, init_app

__all__ = ["bp", "create_app", "init_app"]
