"""Handlers the end-to-end tests run in real worker processes. Each run appends one JSON line to
$SUPRHOOK_PROBE_DIR/runs.jsonl, so a test can count exactly how often each handler ran."""
import json
import os
from pathlib import Path

from celery.signals import worker_ready

from suprhook import PermanentError, on

PROBE_DIR = Path(os.environ.get("SUPRHOOK_PROBE_DIR", "var/probe"))


def record(handler, event, **extra):
    line = json.dumps({"handler": handler, "event_id": event.event_id, "status": event.status,
                       "text": event.message.text if event.message else None, "pid": os.getpid(), **extra})
    with open(PROBE_DIR / "runs.jsonl", "a") as f:  # one small O_APPEND write per run
        f.write(line + "\n")


@worker_ready.connect
def _ready(**_):
    (PROBE_DIR / "ready").write_text(str(os.getpid()))


@on(event_type="status")
def on_status(event):
    timeline = event.timeline
    record("on_status", event, current=timeline.current, history=[e.status for e in timeline.history])


@on(channel="whatsapp", event_type="inbound_message")
def on_reply(event, match):
    record("on_reply", event)


@on(event_type="inbound_message", text=r"(?i)^\s*(yes|no)\b")
def on_yes_no(event, match):
    record("on_yes_no", event, answer=match.group(1).lower())


@on()
def catch_all(event):
    record("catch_all", event, event_type=event.event_type)


@on(workflow="Flaky", max_retries=3)
def flaky(event, attempt):
    """Fails `probe_fail_times` times (a field the test adds to the payload), then succeeds."""
    if attempt < int(event.extra.get("probe_fail_times", 0)):
        record("flaky_failed", event, attempt=attempt)
        raise RuntimeError(f"planned failure {attempt}")
    record("flaky", event, attempt=attempt)


SIDE_QUEUE = "suprhook-probe-side"  # static: receiver and worker must import identical handlers


@on(template="side-queue", queue=SIDE_QUEUE, rate_limit="50/s")
def on_side_queue(event):
    from celery import current_task

    record("on_side_queue", event, queue=current_task.request.delivery_info.get("routing_key"))


@on(workflow="Broken")
def broken(event):
    record("broken", event)
    raise PermanentError("this handler never succeeds")
