"""Handlers tests/test_shutdown.py runs: only the default queue (unique per test, so nothing is taken from
another test on a shared broker) and the worker's ready file."""
import os
import time
from pathlib import Path

from celery.signals import worker_ready

from suprhook.handlers import on


@worker_ready.connect
def _ready(**_):
    (Path(os.environ["SUPRHOOK_PROBE_DIR"]) / "ready").write_text(str(os.getpid()))


@on(event_type="status")
def slow_status(event):
    """Still running when the stop comes: the warm shutdown lets it finish."""
    time.sleep(0.5)


@on(workflow="Long")
def long_running(event):
    """Runs for a minute unless the main process cancels it (cold shutdown)."""
    (Path(os.environ["SUPRHOOK_PROBE_DIR"]) / "long_started").write_text(str(os.getpid()))
    time.sleep(60)
