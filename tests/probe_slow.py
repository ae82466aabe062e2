"""A slow handler with a side effect, for the worker-death tests (see test_worker_death.py)."""
import time

from suprhook.handlers import on

from .probe_handlers import record  # noqa: F401  (also registers worker_ready -> ready file)


@on(workflow="Slow")
def slow(event, followup):
    record("slow_started", event)
    time.sleep(float(event.extra.get("probe_sleep", 3)))
    followup.track_event(event.distinct_id, "slow_done", {"order": event.reference.supr_nid})
    record("slow_done", event)
