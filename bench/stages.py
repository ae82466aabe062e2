"""Where one webhook's time goes: `python -m bench.stages` (in-process, one thread, Redis on 127.0.0.1).

Times each stage of the ingest path (through Flask's test client) and of a handler task's body (called
directly, as the pool process would), averaged over N events, and prints the share of each stage.
Stage times nest: `submit` contains the event log write and the enqueue. For a sampling profile of the
real processes under load, run `py-spy record -p <pid>` against `python -m bench`'s gunicorn workers.
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _timed(acc: collections.Counter, obj: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(obj, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            acc[label] += time.perf_counter() - started

    setattr(obj, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--broker", choices=("redis", "embedded"), default="redis")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="suprhook-stages-")
    queue = f"stages-{uuid.uuid4().hex[:8]}"
    os.environ.update(SUPRHOOK_ENV="production", SUPRHOOK_AUTH_TOKENS="stages-token", SUPRHOOK_DATA_DIR=tmp,
                      SUPRHOOK_HANDLERS="bench.noop_handlers", BENCH_DIR=tmp, SUPRHOOK_QUEUE=queue,
                      SUPRHOOK_RATE_LIMIT="1000000", SUPRHOOK_RATE_LIMIT_BURST="1000000",
                      SUPRHOOK_LOG_LEVEL="WARNING", SUPRHOOK_METRICS_TOKEN="stages-metrics-token")
    if args.broker == "redis":
        os.environ.update(CELERY_BROKER_URL="redis://127.0.0.1:6379/13", SUPRHOOK_DEDUP_URL="redis://127.0.0.1:6379/13")
    import suprhook.receiver.ingest as ingest
    from suprhook import on, worker_app
    from suprhook.handlers.messages import task_message
    from suprhook.handlers.stores.store import EventStore
    import suprhook.handlers.worker.tasks as tasks
    from suprhook.receiver import create_app

    from suprhook.compose import event_log

    app = create_app()
    dispatcher = app.extensions["suprhook"].dispatcher
    store = dispatcher.store or event_log(app.extensions["suprhook"].settings)  # queue-first: the worker's
    acc: collections.Counter = collections.Counter()
    for obj, name, label in ((ingest, "decode_json", "decode_json"),
                             (ingest, "load_event", "validate + normalize"), (dispatcher, "submit", "submit"),
                             (store, "record_accepted", "  event log write"),
                             (dispatcher.dedup, "claim", "  dedup claim"),
                             (dispatcher.dedup, "commit", "  dedup commit"),
                             (dispatcher.celery, "send_task", "  celery send_task")):
        _timed(acc, obj, name, label)
    if dispatcher.fastpath is not None:
        _timed(acc, dispatcher.fastpath, "message", "  build messages")
        _timed(acc, dispatcher.fastpath, "accept", "  dedup + enqueue (Lua)")
    client = app.test_client()
    seed = json.loads((REPO / "examples/payloads/whatsapp_status.json").read_text())
    headers = {"Authorization": "Bearer stages-token", "Content-Type": "application/json"}
    bodies = []
    seed["suprsend_status"]["timestamp"] = int(time.time() * 1000)  # sent now, as live traffic is
    for i in range(args.events + 200):
        seed["reference"]["supr_nid"] = f"{queue}-{i}"
        bodies.append(json.dumps(seed))
    for body in bodies[:200]:
        client.post("/webhooks/suprsend", data=body, headers=headers)
    acc.clear()
    started = time.perf_counter()
    for body in bodies[200:]:
        assert client.post("/webhooks/suprsend", data=body, headers=headers).status_code == 202
    total = time.perf_counter() - started
    n = args.events
    print(f"ingest ({args.broker}), {n} events, one thread, Flask test client: {total / n * 1000:.3f} ms per request")
    for label, seconds in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {label:28s} {seconds / n * 1000:7.3f} ms  {seconds / total * 100:5.1f} %")

    worker = worker_app()
    task = worker.tasks[on.get("bench.noop_handlers.noop").task_name]
    from suprhook.schemas import load_event

    from suprhook.compose import run_book
    from suprhook.handlers.messages import FIRST, run_key
    from suprhook.handlers.stores.runs import RunBook

    settings = app.extensions["suprhook"].settings
    book = run_book(settings, store)
    messages = []
    for body in bodies:  # as the receiver leaves them: the run pending on Redis, the event in the message
        event = load_event(json.loads(body), event_id=f"evt_{uuid.uuid4().hex}")
        if book.client is not None:
            book.client.hset(run_key(settings, event.event_id), "bench.noop_handlers.noop", FIRST)
        else:
            store.record_accepted(event, ["bench.noop_handlers.noop"], body.encode())
        messages.append(task_message(event.event_id, event.raw, event=event))
    wacc: collections.Counter = collections.Counter()
    _timed(wacc, tasks, "message_event", "event from the message")
    _timed(wacc, tasks, "run_handler", "handler call")
    for name, label in (("begin", "claim (RunBook.begin)"), ("finish", "outcome (RunBook.finish)")):
        _timed(wacc, RunBook, name, label)
    _timed(wacc, EventStore, "run_status", "  first claim's log read")
    for message in messages[:200]:
        task.run(message)
    wacc.clear()
    started = time.perf_counter()
    for message in messages[200:]:
        task.run(message)
    total = time.perf_counter() - started
    print(f"\nhandler task body, {n} events (no broker; Celery's own per-task cost is not in here): "
          f"{total / n * 1000:.3f} ms per task")
    for label, seconds in sorted(wacc.items(), key=lambda kv: -kv[1]):
        print(f"  {label:28s} {seconds / n * 1000:7.3f} ms  {seconds / total * 100:5.1f} %")
    if args.broker == "redis":
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
        client.delete(queue, *(run_key(settings, m["event_id"]) for m in messages))
        client.delete(*client.keys(f"suprhook:eventlog:{queue}*"))


if __name__ == "__main__":
    main()
