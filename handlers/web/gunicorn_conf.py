"""gunicorn hooks for metrics over several workers:
`gunicorn -c python:suprhook.handlers.web.gunicorn_conf -w 4 suprhook.wsgi:app`.

With `PROMETHEUS_MULTIPROC_DIR` set, each gunicorn worker writes its metrics there and `GET /metrics`
sums them. The master empties the directory when it starts (values of a previous run would otherwise
be added to this one's), and marks each worker that exits as dead. Use this file as your gunicorn
config, or copy the two hooks into your own.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
