"""Handler tasks: each registered handler runs as its own Celery task, retried with backoff."""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
import traceback
from typing import Any

from celery import Celery, Task
from marshmallow import ValidationError

from ...schemas import Event

from ..errors import PermanentError
from ..integrations.followup import Followup
from ..messages import message_event
from ..observability.jsonlog import bind_run
from ..observability.metrics import handler_run
from ..registry import Filters, Handler, Registry
from ..stores.conversation import Conversation, Snapshot, conversation_key
from ..stores.store import DEAD, FAILED, SKIPPED, SUCCEEDED, RunInProgress, Timeline
from .runtime import WorkerRuntime

log = logging.getLogger("suprhook.worker")


def bind_handler_tasks(app: Celery, registry: Registry, runtime: WorkerRuntime) -> None:
    for handler in registry:
        _bind(app, handler, runtime)


def run_handler(handler: Handler, event: Event, runtime: WorkerRuntime, attempt: int = 0,
                followup: Followup | None = None) -> bool:
    """Run one handler for one event as its task does; False when its `state=` filter did not match. `followup`:
    the handler's follow-up sender (default: a new one), whose `sent` lists what the run sent."""
    if followup is None:
        followup = Followup(event, handler.name, runtime.settings, runtime.suprsend)
    context: dict[str, Any] = {"logger": logging.getLogger(f"suprhook.handler.{handler.name}"), "attempt": attempt,
                               "followup": followup}
    if not handler.needs_conversation:
        _call(handler, event, handler.matching_filter(event), context)
        return True
    store = runtime.conversations()
    key = conversation_key(event)
    with store.locked(key) as token:
        snapshot = store.load(key)
        matched = handler.matching_filter(event, snapshot.arrival_state(event.event_id))
        if matched is None:
            store.save(key, snapshot, token)  # remember this event's arrival state for its other handlers
            return False
        conversation = Conversation(key, snapshot)
        try:
            _call(handler, event, matched, {**context, "conversation": conversation})
            result = Snapshot(conversation.state, conversation.data, snapshot.seen)
            result.dumps()  # data assigned directly must still be storable: fail the run, not the save
        except (TypeError, ValueError) as exc:
            store.save(key, snapshot, token)
            raise PermanentError(f"conversation data is not JSON-serializable: {exc}") from exc
        except BaseException:
            store.save(key, snapshot, token)  # the state is unchanged by a failed run; the retry sees the same
            raise
        store.save(key, result, token)
    return True


def run_error(exc: BaseException) -> str:
    """What the event log keeps of a failed run: "Type: message", a blank line, and the traceback."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n\n{trace}".rstrip()


def _call(handler: Handler, event: Event, matched: Filters | None, context: dict[str, Any]) -> None:
    handler.call(event, match=matched.text_match(event) if matched else None, **context)


def _bind(app: Celery, handler: Handler, runtime: WorkerRuntime) -> Task:
    settings = runtime.settings
    report = functools.partial(handler_run, handler.name, mode=settings.log_distinct_id)  # count + log line

    def run(task: Task, message: dict[str, Any]) -> None:
        event_id = message.get("event_id")
        bind_run(message.get("correlation_id"), event_id, handler.name)
        try:
            event = message_event(message)
        except (KeyError, ValidationError) as exc:
            report("dead", task.request.retries, event_id=event_id, error=exc)
            raise PermanentError(f"message for {event_id} does not load: {exc}") from None
        runs = runtime.runs()
        try:
            claim = runs.begin(event.event_id, handler.name, settings.run_lease, event.timestamp)
        except RunInProgress as exc:
            # A copy of a run that a live process holds (a redelivery, a sweep's copy): look again when
            # its lease would expire. By then it has succeeded (skip), or its holder died and stopped
            # renewing the lease (take it over). Re-sent as it is, so `attempt` counts only failures.
            wait = min(max(exc.retry_in, 0.0), settings.run_lease) + 1.0
            task.apply_async(args=[message], task_id=task.request.id, countdown=wait,
                             retries=task.request.retries, queue=handler.queue or settings.default_queue)
            report("waiting", task.request.retries, event)
            return
        if not claim.attempt:
            report("duplicate", task.request.retries, event)  # it already succeeded (or is dead)
            return
        event = dataclasses.replace(event, timeline=Timeline(runtime.event_store, event.reference.supr_nid, event))
        started = time.perf_counter()
        followup = Followup(event, handler.name, settings, runtime.suprsend)
        with runtime.leases().hold(event.event_id, handler.name, claim.attempt, claim.where):
            try:
                ran = run_handler(handler, event, runtime, attempt=task.request.retries, followup=followup)
            except Exception as exc:
                final = isinstance(exc, PermanentError) or task.request.retries >= (task.max_retries or 0)
                runs.finish(event.event_id, handler.name, claim, DEAD if final else FAILED, run_error(exc),
                            followup.sent)
                report("dead" if final else "failed", task.request.retries, event,
                       time.perf_counter() - started, exc)
                raise
            if not runs.finish(event.event_id, handler.name, claim, SUCCEEDED if ran else SKIPPED,
                               followups=followup.sent):
                log.warning("handler run was taken over handler=%s event_id=%s: this process could not renew its "
                            "lease in time (a stalled process or event log); another attempt owns it",
                            handler.name, event_id)
        report("succeeded" if ran else "skipped", task.request.retries, event,
               time.perf_counter() - started)

    run.__name__ = run.__qualname__ = handler.name.replace(".", "_").replace(":", "_").replace("-", "_")
    return app.task(
        run, bind=True, name=handler.task_name, shared=False,
        acks_late=True, reject_on_worker_lost=True,
        max_retries=settings.max_retries if handler.max_retries is None else handler.max_retries,
        rate_limit=handler.rate_limit,
        autoretry_for=(Exception,), dont_autoretry_for=(PermanentError,),
        retry_backoff=1, retry_backoff_max=settings.retry_backoff_max, retry_jitter=True,
    )
