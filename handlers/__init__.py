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
           "Registry", "Settings", "on", "worker_app"]


def worker_app(config: dict | None = None, registry: Registry | None = None):
    """The Celery app of `celery -A suprhook.celery_worker worker`: loads handler modules, binds tasks."""
    from .worker.worker_metrics import prepare as prepare_observability  # first: before prometheus_client is imported
    prepare_observability(config)
    from .celery_app import create_celery
    from .integrations.usermaven import install as install_usermaven
    from .loader import load_handler_modules
    from .stores import embedded

    settings = Settings.load(config)
    settings.validate()
    load_handler_modules(settings.handler_modules)
    registry = registry if registry is not None else on
    usermaven = install_usermaven(registry, settings, config)  # opt-in sink: None unless USERMAVEN_* are set
    app = create_celery(settings, registry, role="worker")
    from .worker.shutdown import install as guard_pool_processes
    guard_pool_processes()  # pool processes take SIGTERM only from the main process (handlers/worker/shutdown.py)
    from celery.signals import worker_ready

    def on_ready(**_: object) -> None:
        if settings.embedded_broker:
            embedded.start_cleanup(settings.broker_url)
        if settings.recovery_sweep:
            from .stores.store import EventStore
            from .worker.recovery import start_sweeper

            start_sweeper(EventStore(settings.store_url), app, registry, settings)
        if usermaven is not None:
            usermaven.start()  # its flusher thread; it flushes again on worker_shutdown

    worker_ready.connect(on_ready, weak=False)
    return app
