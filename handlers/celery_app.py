"""The Celery app: JSON only, late acks, bounded publishing, a queue for every handler queue; it binds no task."""
from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from .registry import Registry
from .settings import Settings
from .stores import embedded


def broker_options(settings: Settings, role: str) -> dict[str, Any]:
    """Transport options per broker. `role` is 'producer' (the receiver) or 'worker'."""
    url, producer = settings.broker_url, role == "producer"
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {
            "visibility_timeout": settings.visibility_timeout,
            # A live worker refreshes its held messages (handlers.worker.leases.RefreshHeldMessages), so the
            # timeout only decides how soon a dead worker's messages come back: check every 5 s, and
            # let a restorer that died holding kombu's restore mutex block the others 30 s, not 5 min.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": 30,
            # A hung Redis must not hold a webhook request: bound every socket operation.
            "socket_timeout": settings.publish_timeout if producer else 30,
            "socket_connect_timeout": settings.publish_timeout if producer else 5,
            "health_check_interval": 25,
        }
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        options: dict[str, Any] = {"confirm_publish": True}
        if producer:
            options.update(read_timeout=settings.publish_timeout, write_timeout=settings.publish_timeout)
        return options
    if settings.embedded_broker:
        return {"connect_args": {"timeout": 30}}
    return {}


def create_celery(settings: Settings, registry: Registry, *, role: str = "worker") -> Celery:
    """A configured Celery app, with a queue for every queue of `registry`'s handlers. It binds no task: the
    receiver sends tasks by name, and the worker's composition root (suprhook.compose) binds them."""
    if settings.embedded_broker:
        embedded.prepare(settings.broker_url, settings.poll_interval)
    app = Celery("suprhook", set_as_current=False)
    queues = {settings.default_queue} | {h.queue for h in registry if h.queue}
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_options(settings, role),
        broker_connection_timeout=settings.publish_timeout if role == "producer" else 4,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_default_queue=settings.default_queue,
        task_queues=[Queue(q, routing_key=q) for q in sorted(queues)],
        task_create_missing_queues=True,
        task_publish_retry=True,
        # Publishing happens inside a webhook request: fail fast (-> 503, the sender retries).
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.1,
                                   "interval_step": 0.2, "interval_max": 0.2},
        worker_prefetch_multiplier=4,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    if settings.embedded_broker:
        embedded.declare_queues(app)
    return app
