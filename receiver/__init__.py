"""The HTTP side of suprhook: `create_app()` for a standalone service, `init_app()` to mount it."""
if __name__ != "suprhook.receiver":  # one module, one name: a second copy would be a second registry
    raise ImportError(f"import suprhook.receiver, not {__name__} (see src/suprhook/__init__.py)")
import importlib
from typing import TYPE_CHECKING, Any

# Loaded when first asked for: `suprhook --help` and the other CLI commands import suprhook.receiver.cli,
# which must not pay for Flask, SQLAlchemy and Celery (measured: --help 0.63 s eager).
_EXPORTS = {"create_app": ".app", "bp": ".blueprint", "init_app": ".blueprint", "Endpoint": ".endpoints"}
__all__ = ["Endpoint", "bp", "create_app", "init_app"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .app import create_app
    from .blueprint import bp, init_app
    from .endpoints import Endpoint
