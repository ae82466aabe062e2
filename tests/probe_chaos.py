"""The chaos test's handler: a short piece of work, then one follow-up (its countable side effect)."""
import os
import time
from pathlib import Path

from celery.signals import worker_ready

from suprhook.handlers import on

PROBE_DIR = Path(os.environ.get("SUPRHOOK_PROBE_DIR", "var/probe"))


@worker_ready.connect
def _ready(**_):
    (PROBE_DIR / "ready").write_text(str(os.getpid()))


@on(workflow="Chaos")
def chaos(event, followup):
    time.sleep(0.005)
    followup.track_event(event.distinct_id, "chaos_done", {"source_event": event.event_id})
