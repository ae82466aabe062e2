"""A worker's logs and metrics, set up by `suprhook.compose.build_worker` before anything imports prometheus_client.

With `SUPRHOOK_LOG_FORMAT=json` (production's default) every line the worker writes is one JSON object
(`json_worker_logs`): Celery's own lines ("Task ... received", "... succeeded in", tracebacks as `exc`)
get `JsonFormatter` through its `after_setup_logger` / `after_setup_task_logger` signals, its startup
banner becomes one `celery worker starting` line, its shutdown notices and Python warnings go through
the same formatter, and what a handler prints is redirected to logging, as Celery does by default.

With `SUPRHOOK_WORKER_METRICS_PORT`, the worker's main process serves `GET /metrics` on that port
(`SUPRHOOK_WORKER_METRICS_ADDR`, default 0.0.0.0) once it is ready. The handlers run in pool
processes, so their metrics go through prometheus_client's multiprocess mode: into
`PROMETHEUS_MULTIPROC_DIR` if set (emptied at start: give each worker instance its own), else a
private temporary directory removed at exit. A pool process marks itself dead when it exits.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..observability.jsonlog import FIELDS_ATTR, JsonFormatter, setup_logging
from ..settings import Settings

log = logging.getLogger("suprhook.worker")


def prepare(config: Mapping[str, Any] | None = None) -> Settings:
    """Configure logging and, with a metrics port, multiprocess metrics; call before the Celery app is built."""
    settings = Settings.load(config)
    setup_logging(settings)
    json_worker_logs(settings)
    if not settings.worker_metrics_port:
        return settings
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path and "prometheus_client.values" in sys.modules:
        raise ConfigError("SUPRHOOK_WORKER_METRICS_PORT: prometheus_client was imported before the worker was "
                          "set up; set PROMETHEUS_MULTIPROC_DIR (an empty directory) in the worker's environment")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):  # a previous run's values; counters start from zero
            stale.unlink(missing_ok=True)
    else:
        path = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="suprhook-worker-metrics-")
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))
    from celery.signals import worker_process_shutdown, worker_ready

    def serve(**_: object) -> None:
        from prometheus_client import start_http_server

        from ..observability.metrics import REGISTRY_SCRAPED

        try:
            start_http_server(settings.worker_metrics_port, settings.worker_metrics_addr, registry=REGISTRY_SCRAPED)
        except OSError as exc:
            log.error("worker metrics not served on %s:%d: %s", settings.worker_metrics_addr,
                      settings.worker_metrics_port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_addr, settings.worker_metrics_port)

    def child_exit(**_: object) -> None:
        from ..observability.metrics import mark_process_dead

        mark_process_dead(os.getpid())

    worker_ready.connect(serve, weak=False)
    worker_process_shutdown.connect(child_exit, weak=False)
    return settings


# --------------------------------------------------------------------------------------------------
# JSON logs for the whole worker


def json_worker_logs(settings: Settings) -> None:
    """With SUPRHOOK_LOG_FORMAT=json, make Celery write JSON too, so that no worker line is anything else.

    Only the process's logging and Celery's worker signals are touched, so this is harmless in a process
    that builds the worker app without running a worker; nothing changes with the text format."""
    if settings.log_format != "json":
        return
    from celery import signals

    root = logging.getLogger()
    if not root.handlers:  # until Celery sets up logging (its "superuser" warning comes before that)
        early = logging.StreamHandler(sys.__stderr__)
        early.setFormatter(JsonFormatter())
        root.addHandler(early)
    logging.captureWarnings(True)  # warnings.warn(...) as lines of the `py.warnings` logger
    signals.after_setup_logger.connect(_json_handlers, weak=False)
    signals.after_setup_task_logger.connect(_json_handlers, weak=False)
    signals.celeryd_init.connect(_quiet_banner, weak=False)
    import celery.apps.worker

    celery.apps.worker.safe_say = _say  # "worker: Warm shutdown (MainProcess)", written from a signal handler


def _json_handlers(logger: logging.Logger | None = None, **_: Any) -> None:
    """Celery has set up the root logger (or the task logger): our formatter on its handlers."""
    from celery.utils.log import get_multiprocessing_logger

    for each in (logger, get_multiprocessing_logger()):
        for handler in getattr(each, "handlers", ()):
            handler.setFormatter(JsonFormatter())


def _quiet_banner(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """The worker's plain-text banner (printed to stdout) becomes one log line."""
    if instance is not None:
        instance.emit_banner = functools.partial(_log_banner, instance)


def _log_banner(worker: Any) -> None:
    fields: dict[str, Any] = {"hostname": worker.hostname}
    try:
        fields["config"] = [line.strip() for line in worker.startup_info(artlines=False).splitlines()
                            if line.strip()]  # app, transport (password masked by Celery), concurrency, queues
        fields["tasks"] = sorted(name for name in worker.app.tasks if not name.startswith("celery."))
    except Exception as exc:  # the banner is informational: never fail a start for it
        fields["error"] = f"{type(exc).__name__}: {exc}"
    logging.getLogger("celery.apps.worker").info("celery worker starting", extra={FIELDS_ATTR: fields})


def _say(msg: str, f: Any = None) -> None:
    """Celery's `safe_say`, as a JSON line: one os.write, no lock (it runs in a signal handler)."""
    stream = f if f is not None else sys.__stderr__
    record = logging.LogRecord("celery.apps.worker", logging.INFO, __file__, 0, msg.strip(), None, None)
    try:
        os.write(stream.fileno(), (JsonFormatter().format(record) + "\n").encode())
    except (OSError, ValueError, AttributeError):
        pass  # best effort, as Celery's own
