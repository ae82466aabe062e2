"""The benchmark's no-op handler (SUPRHOOK_HANDLERS=bench.noop_handlers)."""
from celery.signals import worker_ready

from bench.probe import mark_ready, record
from suprhook import on


@on()
def noop(event):
    record(event.extra)


worker_ready.connect(lambda **_: mark_ready("suprhook"), weak=False)
