"""suprhook: receive SuprSend outbound webhooks and run your handlers for each event as Celery tasks.

    from suprhook import on

    @on(channel="whatsapp", event_type="inbound_message", text=r"(?i)^yes\\b")
    def confirm(event, match, logger):
        logger.info("%s said yes", event.distinct_id)

Everything public is importable from here. The names load lazily (PEP 562 `__getattr__`): `import suprhook`
costs nothing, `from suprhook import on` loads only the registry, and the web process never imports the
worker-only modules (the SuprSend SDK behind `Followup`, the testing kit) because it never asks for them.

Layout: this directory holds only the package's own entry modules (`wsgi`, `celery_worker`, `__main__`).
The code lives at the repository's top level and is mapped in at install time by setuptools `package_dir`
(setup.cfg): `receiver/` is `suprhook.receiver`, `handlers/` is `suprhook.handlers`, `schemas/` is
`suprhook.schemas`. Import them only by those names.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it (relative to this package)
_EXPORTS = {
    # writing handlers
    "on": ".handlers.registry", "Registry": ".handlers.registry", "Handler": ".handlers.registry",
    "Filters": ".handlers.registry",
    "Event": ".schemas", "load_event": ".schemas", "ValidationError": ".schemas",
    "PermanentError": ".handlers.errors", "ConfigError": ".handlers.errors", "EnqueueError": ".handlers.errors",
    "InFlight": ".handlers.errors",
    "Settings": ".handlers.settings",
    "Followup": ".handlers.integrations.followup", "FollowupUnavailable": ".handlers.integrations.followup",
    "Conversation": ".handlers.stores.conversation",
    "Timeline": ".handlers.stores.store",
    "enable_keywords": ".handlers.keywords",
    # the HTTP side
    "create_app": ".receiver.app", "init_app": ".receiver.blueprint", "Endpoint": ".receiver.endpoints",
    # the worker
    "worker_app": ".compose", "build_web": ".compose", "build_worker": ".compose",
    # testing your handlers (the pytest plugin's fixtures wrap these)
    "make_status_event": ".schemas.samples", "make_inbound_message": ".schemas.samples",
    "dispatch_sync": ".handlers.testing", "SyncDispatcher": ".handlers.testing",
    "FollowupRecorder": ".handlers.testing", "RecordedFollowup": ".handlers.testing",
    "Outcome": ".handlers.testing", "Outcomes": ".handlers.testing", "isolated_settings": ".handlers.testing",
    "SuprhookClient": ".receiver.pytest_plugin",
}

# the keys of _EXPORTS, spelled out for static tools (tests/test_namespace.py checks they agree)
__all__ = ["ConfigError", "Conversation", "Endpoint", "EnqueueError", "Event", "Filters", "Followup",
           "FollowupRecorder", "FollowupUnavailable", "Handler", "InFlight", "Outcome", "Outcomes", "PermanentError",
           "RecordedFollowup", "Registry", "Settings", "SuprhookClient", "SyncDispatcher", "Timeline",
           "ValidationError", "build_web", "build_worker", "create_app", "dispatch_sync", "enable_keywords",
           "init_app", "isolated_settings", "load_event", "make_inbound_message", "make_status_event", "on",
           "worker_app"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names above load lazily
    from .compose import build_web, build_worker, worker_app
    from .handlers.stores.conversation import Conversation
    from .handlers.errors import ConfigError, EnqueueError, InFlight, PermanentError
    from .handlers.integrations.followup import Followup, FollowupUnavailable
    from .handlers.keywords import enable_keywords
    from .handlers.registry import Filters, Handler, Registry, on
    from .handlers.settings import Settings
    from .handlers.stores.store import Timeline
    from .handlers.testing import (FollowupRecorder, Outcome, Outcomes, RecordedFollowup, SyncDispatcher,
                                   dispatch_sync, isolated_settings)
    from .receiver.app import create_app
    from .receiver.blueprint import init_app
    from .receiver.endpoints import Endpoint
    from .receiver.pytest_plugin import SuprhookClient
    from .schemas import Event, ValidationError, load_event
    from .schemas.samples import make_inbound_message, make_status_event
