"""The HTTP side of suprhook: `create_app()` for a standalone service, `init_app()` to mount it."""
if __name__ != "suprhook.receiver":  # one module, one name: a second copy would be a second registry
    raise ImportError(f"import suprhook.receiver, not {__name__} (see src/suprhook/__init__.py)")
from .app import create_app
from .blueprint import bp, init_app
from .endpoints import Endpoint

__all__ = ["Endpoint", "bp", "create_app", "init_app"]
