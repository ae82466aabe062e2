"""Register handlers with `@on(...)`; they run as Celery tasks for each matching webhook event.

    from suprhook import on

    @on(channel="whatsapp", event_type="inbound_message", text=r"(?i)^yes\\b")
    def confirm(event, match, logger):
        logger.info("%s said yes", event.distinct_id)
"""
from __future__ import annotations
if __name__ != "suprhook.handlers":  # one module, one name: a second copy would be a second registry
    raise ImportError(f"import suprhook.handlers, not {__name__} (see src/suprhook/__init__.py)")

from ..schemas import Event

from .errors import ConfigError, EnqueueError, InFlight, PermanentError
from .registry import Filters, Handler, Registry, on
from .settings import Settings

__all__ = ["ConfigError", "EnqueueError", "Event", "Filters", "Handler", "InFlight", "PermanentError",
           "Registry", "Settings", "on"]

