"""Baseline for bench/dev_throughput.py: a bare Celery no-op task on the same broker and settings."""
import os
from pathlib import Path

from celery import Celery
from kombu.transport import sqlalchemy as sqla_transport

sqla_transport.Transport.polling_interval = 0.05  # same poll interval as suprhook's embedded broker

app = Celery("bench_raw", broker=os.environ["CELERY_BROKER_URL"], set_as_current=False)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_acks_late=True, worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "1")),
                task_default_queue=os.environ["BENCH_QUEUE"],
                broker_transport_options={"connect_args": {"timeout": 30}})


@app.task(name="bench.raw_noop", shared=False)
def raw_noop(payload, last=False):
    if last:
        Path(os.environ["BENCH_DONE_FILE"]).write_text("done")
