"""Re-sending handler runs from the event log: `suprhook replay`, the recovery sweep, and (soon) the console.

Not worker-only code: the CLI and the receiver's console replay from here too."""
from __future__ import annotations

from typing import Iterable

from celery import Celery

from .messages import task_message
from .registry import Registry
from .settings import Settings
from .stores.runs import RunBook, open_run_book
from .stores.store import EventStore


def redispatch(store: EventStore, celery: Celery, registry: Registry, settings: Settings,
               pairs: Iterable[tuple[str, str]], reopen: bool = True, *,
               runs: RunBook | None = None) -> tuple[int, list[str]]:
    """Send a task for each (event_id, handler); returns (sent, problems). The worker's run
    bookkeeping skips any run that has succeeded meanwhile, so sending twice is harmless.
    `reopen=False`: the runs were reopened already, by the sweep's claim (see sweep_once).
    `runs`: where runs are reopened (default: the settings' run book, on the broker's Redis when it is one)."""
    sent, problems = 0, []
    if reopen and runs is None:
        runs = open_run_book(settings, lambda: store)
    for event_id, name in pairs:
        payload = store.body(event_id)
        try:
            handler = registry.get(name)
        except KeyError:
            problems.append(f"{event_id}: handler {name} is not registered here (check SUPRHOOK_HANDLERS)")
            continue
        if payload is None:
            problems.append(f"{event_id}: not in the event log")
            continue
        if runs is not None and not runs.reopen(event_id, name):  # succeeded meanwhile, or runs under a live lease
            continue
        celery.send_task(handler.task_name, args=[task_message(event_id, payload)],
                         queue=handler.queue or settings.default_queue)
        sent += 1
    return sent, problems
