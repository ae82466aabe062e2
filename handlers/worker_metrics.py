"""A worker's logs and metrics, set up by `worker_app` before anything imports prometheus_client.

With `SUPRHOOK_WORKER_METRICS_PORT`, the worker's main process serves `GET /metrics` on that port
(`SUPRHOOK_WORKER_METRICS_ADDR`, default 0.0.0.0) once it is ready. The handlers run in pool
processes, so their metrics go through prometheus_client's multiprocess mode: into
`PROMETHEUS_MULTIPROC_DIR` if set (emptied at start: give each worker instance its own), else a
private temporary directory removed at exit. A pool process marks itself dead when it exits.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .jsonlog import setup_logging
from .settings import Settings

log = logging.getLogger("suprhook.worker")


def prepare(config: Mapping[str, Any] | None = None) -> Settings:
    """Configure logging and, with a metrics port, multiprocess metrics; call before the Celery app is built."""
    settings = Settings.load(config)
    setup_logging(settings)
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

        from .metrics import REGISTRY_SCRAPED

        try:
            start_http_server(settings.worker_metrics_port, settings.worker_metrics_addr, registry=REGISTRY_SCRAPED)
        except OSError as exc:
            log.error("worker metrics not served on %s:%d: %s", settings.worker_metrics_addr,
                      settings.worker_metrics_port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_addr, settings.worker_metrics_port)

    def child_exit(**_: object) -> None:
        from .metrics import mark_process_dead

        mark_process_dead(os.getpid())

    worker_ready.connect(serve, weak=False)
    worker_process_shutdown.connect(child_exit, weak=False)
    return settings
