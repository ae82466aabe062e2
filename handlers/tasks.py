"""Handler tasks: each registered handler runs as its own Celery task, retried with backoff."""
from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task
from marshmallow import ValidationError

from schemas import load_event

from .errors import PermanentError
from .registry import Handler, Registry
from .settings import Settings

log = logging.getLogger("suprhook.worker")


def bind_handler_tasks(app: Celery, registry: Registry, settings: Settings) -> None:
    for handler in registry:
        _bind(app, handler, settings)


def _bind(app: Celery, handler: Handler, settings: Settings) -> Task:
    handler_log = logging.getLogger(f"suprhook.handler.{handler.name}")

    def run(task: Task, message: dict[str, Any]) -> None:
        event_id = message.get("event_id")
        try:
            event = load_event(message["payload"], event_id=event_id)
        except (KeyError, ValidationError) as exc:
            raise PermanentError(f"message for {event_id} does not load: {exc}") from None
        matched = handler.matching_filter(event)
        started = time.perf_counter()
        handler.call(event, match=matched.text_match(event) if matched else None,
                     logger=handler_log, attempt=task.request.retries)
        log.info("handler ok handler=%s event_id=%s attempt=%d ms=%.1f", handler.name, event_id,
                 task.request.retries, (time.perf_counter() - started) * 1000)

    run.__name__ = run.__qualname__ = handler.name.replace(".", "_").replace(":", "_").replace("-", "_")
    return app.task(
        run, bind=True, name=handler.task_name, shared=False,
        acks_late=True, reject_on_worker_lost=True,
        max_retries=settings.max_retries if handler.max_retries is None else handler.max_retries,
        rate_limit=handler.rate_limit,
        autoretry_for=(Exception,), dont_autoretry_for=(PermanentError,),
        retry_backoff=1, retry_backoff_max=settings.retry_backoff_max, retry_jitter=True,
    )
