"""The composition root: what each process builds for its role, from one validated `Settings`.

- `configure`: what every role starts from: the settings, the user's handler modules loaded into the
  registry, and the opt-in Usermaven handler. `suprhook routes`, `events`, `replay` stop here.
- `build_web`: the receiver: request guard, routes, Celery producer, dedup store, event log, the
  dispatcher and the ingest core over them. It imports nothing that only the worker runs (tasks, the
  SuprSend SDK, the lease heartbeat): `python -c "import suprhook.wsgi, sys; assert 'suprsend' not in
  sys.modules"` holds.
- `build_worker`: the worker: its logs and metrics, the Celery app with one task per handler, the
  per-process `WorkerRuntime` (event log, conversations, leases, SuprSend client), the event log's writer
  (queue-first on Redis), the recovery sweep, the Usermaven flusher, and the pool processes' SIGTERM guard.

`init_app`, `suprhook.celery_worker`, `suprhook check-config` and the testing kit call these; nothing
else wires parts together. The steps `build_web` runs are public so that `check-config` can run each
alone and say which one fails.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .handlers.integrations.usermaven import UsermavenSink, install as install_usermaven
from .handlers.loader import load_handler_modules
from .handlers.registry import Registry, on
from .handlers.settings import Settings, config_source

if TYPE_CHECKING:
    from celery import Celery
    from suprsend import Suprsend

    from .handlers.stores.browse import ConsoleData, EventBrowser, ReplayJobs
    from .handlers.stores.dedup import DedupStore
    from .handlers.stores.runs import RunBook
    from .handlers.stores.store import EventStore
    from .handlers.web.dispatch import Dispatcher
    from .handlers.web.traffic import TrafficRecorder
    from .handlers.worker.log_writer import EventLogWriter, QueueLogWriter
    from .handlers.worker.runtime import WorkerRuntime
    from .receiver.console_auth import ConsoleAuth
    from .receiver.endpoints import Endpoint, Route
    from .receiver.ingest import Ingest
    from .receiver.security import RequestGuard

Config = Mapping[str, Any]


# --------------------------------------------------------------------------------------------------
# Every role


@dataclass(frozen=True)
class Core:
    """What every role starts from."""

    settings: Settings
    registry: Registry
    usermaven: UsermavenSink | None  # the opt-in Usermaven sink (None unless USERMAVEN_* are set)


def load_settings(config: Config | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """`Settings` from the environment (or `environ`) and `config` (keys as the variable names), validated."""
    settings = Settings.load(config, environ)
    settings.validate()
    return settings


def configure(settings: Settings, config: Config | None = None, *, registry: Registry | None = None,
              handler_modules: Iterable[str] | None = None) -> Core:
    """Load the handler modules (default: SUPRHOOK_HANDLERS) into `registry` (default: `on`) and register
    the Usermaven handler when USERMAVEN_* are set (in `config` or the environment)."""
    registry = on if registry is None else registry
    load_handler_modules(settings.handler_modules if handler_modules is None else handler_modules)
    return Core(settings, registry, install_usermaven(registry, settings, config))


# --------------------------------------------------------------------------------------------------
# The web process


@dataclass(frozen=True)
class Web:
    """The receiver's parts; `ingest` answers one webhook request (receiver.ingest)."""

    settings: Settings
    registry: Registry
    guard: "RequestGuard"
    routes: "tuple[Route, ...]"  # the default route first
    celery: "Celery"  # a producer: it sends tasks by name and binds none
    dispatcher: "Dispatcher"
    ingest: "Ingest"
    console: "Console | None" = None  # the event console, when a console token is set


@dataclass(frozen=True)
class Console:
    """The event console's parts (receiver.console serves them at /console/). The event log is opened on first
    use (`data`), so a receiver with the console starts while the event log is down."""

    auth: "ConsoleAuth"
    data: "ConsoleData"
    traffic: "TrafficRecorder"

    @property
    def store(self) -> "EventStore":
        return self.data.open()[0]

    @property
    def browser(self) -> "EventBrowser":
        return self.data.open()[1]

    @property
    def jobs(self) -> "ReplayJobs":
        return self.data.open()[2]


def console(settings: Settings, store: "EventStore | None" = None) -> Console:
    """Sign-in and sessions, the event log's read side, bulk-replay jobs and the overview's webhook counts."""
    from .handlers.stores.browse import ConsoleData
    from .handlers.web.traffic import TrafficRecorder, traffic_storage
    from .receiver.console_auth import ConsoleAuth

    data = ConsoleData((lambda: store) if store is not None else (lambda: event_log(settings)))
    return Console(ConsoleAuth(settings), data, TrafficRecorder(traffic_storage(settings)))


def request_guard(settings: Settings) -> "RequestGuard":
    """The source checks (allowlist, rate and refusal limits) and the default signature verifier."""
    from .receiver.security import RequestGuard

    return RequestGuard(settings)


def routes(settings: Settings, config: Config | None = None, endpoints: Iterable["Endpoint"] = (), *,
           url_prefix: str | None = None, guard: "RequestGuard | None" = None) -> "list[Route]":
    """The default route, then the named endpoints of SUPRHOOK_ENDPOINTS and `endpoints`, checked."""
    from .receiver.endpoints import load_routes

    return load_routes(settings, config_source(config), endpoints, url_prefix=url_prefix,
                       default_verifier=guard.verifier if guard is not None else None)


def producer(settings: Settings, registry: Registry) -> "Celery":
    """The Celery app the receiver publishes with (and `suprhook replay`, and the recovery sweep's CLI)."""
    from .handlers.celery_app import create_celery

    return create_celery(settings, registry, role="producer")


def dedup_store(settings: Settings) -> "DedupStore":
    from .handlers.stores.dedup import open_dedup

    return open_dedup(settings.dedup_url, settings.dedup_ttl)


def event_log(settings: Settings) -> "EventStore":
    from .handlers.stores.store import EventStore

    return EventStore(settings.store_url)


def run_book(settings: Settings, store: "EventStore | Callable[[], EventStore] | None" = None) -> "RunBook":
    """Run bookkeeping (claim, renew, finish, reopen): on the broker's Redis when it is one, else the event log.
    `suprhook replay` reopens runs through it."""
    from .handlers.stores.runs import open_run_book

    from .handlers.stores.store import store_opener

    return open_run_book(settings, store_opener(store) if store is not None else (lambda: event_log(settings)))


def dispatcher(settings: Settings, registry: Registry, celery: "Celery", dedup: "DedupStore | None" = None,
               store: "EventStore | None" = None) -> "Dispatcher":
    """Dedup, event log and enqueue: what the receiver does with a valid event. Queue-first (Redis) the
    receiver opens the event log only on the embedded broker (unless given one): elsewhere the worker's log
    writer fills it."""
    from .handlers.messages import log_mode
    from .handlers.web.dispatch import Dispatcher

    if store is None and log_mode(settings) == "sync":
        store = event_log(settings)
    return Dispatcher(settings, registry, celery, dedup if dedup is not None else dedup_store(settings), store)


def build_web(config: Config | None = None, *, registry: Registry | None = None,
              endpoints: Iterable["Endpoint"] = (), url_prefix: str | None = None) -> Web:
    """Everything the receiver needs. Raises ConfigError for a setting that would make it unsafe or broken
    (in production: no authentication, an unguarded /metrics)."""
    from .receiver.ingest import Ingest

    settings = Settings.load(config)
    settings.require_auth()
    settings.validate()
    guard = request_guard(settings)
    served = routes(settings, config, endpoints, url_prefix=url_prefix, guard=guard)
    settings.require_metrics_guard()  # after the webhooks' own authentication problems, which matter more
    core = configure(settings, config, registry=registry)
    celery = producer(settings, core.registry)
    dispatch = dispatcher(settings, core.registry, celery)
    parts = console(settings, dispatch.store) if settings.console_enabled else None
    return Web(settings, core.registry, guard, tuple(served), celery, dispatch,
               Ingest(settings, guard, dispatch, served, parts.traffic.observe if parts else None), parts)


# --------------------------------------------------------------------------------------------------
# The worker


@dataclass(frozen=True)
class Worker:
    """The worker's parts: `celery` is what `celery -A suprhook.celery_worker worker` runs."""

    settings: Settings
    registry: Registry
    celery: "Celery"
    runtime: "WorkerRuntime"
    usermaven: UsermavenSink | None


def worker_runtime(settings: Settings, *,
                   suprsend: "Suprsend | Callable[[], Suprsend] | None" = None) -> "WorkerRuntime":
    """What handler runs use besides their event (the testing kit passes a recording SuprSend client)."""
    from .handlers.worker.runtime import WorkerRuntime

    return WorkerRuntime(settings, suprsend=suprsend)


def build_worker(config: Config | None = None, *, registry: Registry | None = None) -> Worker:
    """Everything the worker needs; its threads (event log writer, recovery sweep, Usermaven flusher) start on
    worker_ready."""
    from .handlers.worker.worker_metrics import prepare as prepare_observability

    prepare_observability(config)  # first: before anything imports prometheus_client
    from celery.signals import worker_ready

    from .handlers.celery_app import create_celery
    from .handlers.stores import embedded
    from .handlers.messages import log_mode
    from .handlers.worker.leases import RefreshHeldMessages
    from .handlers.worker.recovery import start_sweeper
    from .handlers.worker.shutdown import install as guard_pool_processes
    from .handlers.worker.tasks import bind_handler_tasks

    core = configure(load_settings(config), config, registry=registry)
    settings, runtime = core.settings, worker_runtime(core.settings)
    app = create_celery(settings, core.registry, role="worker")
    bind_handler_tasks(app, core.registry, runtime)
    app.conf.suprhook_unacked_refresh_every = settings.unacked_refresh_every
    app.steps["consumer"].add(RefreshHeldMessages)  # a live worker's held Redis messages never look stale
    guard_pool_processes()  # pool processes take SIGTERM only from the main process (handlers/worker/shutdown.py)

    def on_ready(**_: object) -> None:
        # Each part on its own: Celery only logs what a worker_ready receiver raises, and one failing start
        # must not keep the others from starting.
        starts = []
        if settings.embedded_broker:
            starts.append(("embedded broker cleanup", lambda: embedded.start_cleanup(settings.broker_url)))
        if log_mode(settings) != "sync":  # the receivers leave the event log to the worker: this process writes it
            # The store opens inside the writer's retry loop: a database that is down now delays the log.
            starts.append(("event log writer", lambda: event_log_writer(settings, runtime.event_store, app).start()))
        if settings.recovery_sweep:
            starts.append(("recovery sweep", lambda: start_sweeper(runtime.event_store, app, core.registry, settings)))
        if core.usermaven is not None:  # its flusher thread; it flushes again on worker_shutdown
            starts.append(("Usermaven flusher", core.usermaven.start))
        for name, start in starts:
            try:
                start()
            except Exception:
                logging.getLogger("suprhook.worker").exception("could not start the %s", name)

    worker_ready.connect(on_ready, weak=False)
    return Worker(settings, core.registry, app, runtime, core.usermaven)


def event_log_writer(settings: Settings, store: "EventStore | Callable[[], EventStore] | None" = None,
                     celery: "Celery | None" = None) -> "EventLogWriter | QueueLogWriter":
    """The writer that moves accepted events into the event log: from the Redis stream (queue-first) or from
    the log queue (any other remote broker). The embedded broker's receiver writes the log itself."""
    from .handlers.messages import log_mode, log_queue, log_stream_key
    from .handlers.worker.log_writer import EventLogWriter, QueueLogWriter

    store = store if store is not None else (lambda: event_log(settings))
    mode = log_mode(settings)
    if mode == "stream":  # the stream lives on the broker's Redis, beside the run state the writer drops
        runs = run_book(settings, store)
        return EventLogWriter(runs.client, log_stream_key(settings), store, runs=runs)
    if mode == "queue":
        return QueueLogWriter(celery if celery is not None else producer(settings, Registry()), log_queue(settings),
                              store)
    raise ValueError("the embedded broker's receiver writes the event log itself: there is no log writer")


def worker_app(config: Config | None = None, registry: Registry | None = None) -> "Celery":
    """The Celery app of `celery -A suprhook.celery_worker worker` (`build_worker(...).celery`)."""
    return build_worker(config, registry=registry).celery
