"""The dispatch baseline: a bare Celery no-op task with the broker and worker settings suprhook uses."""
from celery import Celery
from celery.signals import worker_ready

from bench.probe import mark_ready, record
from suprhook.handlers import Settings
from suprhook.handlers.celery_app import broker_options

settings = Settings.load()
app = Celery("bench_raw", broker=settings.broker_url, set_as_current=False)
app.conf.update(
    broker_transport_options=broker_options(settings, "worker"),
    task_serializer="json", accept_content=["json"], task_ignore_result=True,
    task_acks_late=True, task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    task_default_queue=settings.default_queue, worker_hijack_root_logger=False,
)
if settings.embedded_broker:
    from suprhook.handlers.stores import embedded

    embedded.prepare(settings.broker_url, settings.poll_interval)


@app.task(name="bench.raw_noop", shared=False)
def raw_noop(payload):
    record(payload)


worker_ready.connect(lambda **_: mark_ready("raw"), weak=False)


def publish(count: int, template_path: str, prefix: str) -> None:
    """Queue `count` raw no-op tasks carrying the same webhook bodies suprhook's tasks carry."""
    import json

    template = open(template_path).read()
    for i in range(count):
        raw_noop.apply_async(args=[json.loads(template.replace("__NID__", f"{prefix}-{i}"))])
