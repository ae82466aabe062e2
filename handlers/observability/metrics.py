"""Prometheus metrics: the receiver's `GET /metrics`, and the worker's metrics port.

With `PROMETHEUS_MULTIPROC_DIR` set (gunicorn with several workers; a Celery worker, whose pool
processes run the handlers) prometheus_client's multiprocess mode is on: every process writes its
values to files in that directory and a scrape sums them, whichever process answers. It is decided
when prometheus_client is first imported, so the variable must be in the environment before the
process starts (gunicorn), or is set by `handlers.worker.worker_metrics.prepare` (worker).

Metric updates are cheap on purpose: label children with fixed values are bound once, here.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

from .jsonlog import FIELDS_ATTR, event_fields

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None  # as prometheus_client saw it at import
if MULTIPROC_DIR:  # gunicorn's on_starting makes it, but not for `--check-config`, `--preload` or other servers
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

REJECT_REASONS = ("auth", "size", "content_type", "signature", "body", "schema", "rate_limited", "ip",
                  "in_progress", "unavailable", "wrong_endpoint")
INGEST_OUTCOMES = ("accepted", "duplicate", "rejected")
RUN_OUTCOMES = ("succeeded", "failed", "dead", "skipped", "duplicate")
DEDUP_OPS = ("claim", "commit", "release")
FOLLOWUP_FAILURES = ("unavailable", "rejected", "invalid")

_LATENCY = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0)
_RUN_LATENCY = (.005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# -- receiver ---------------------------------------------------------------------------------------
RECEIVED = Counter("suprhook_webhooks_received", "POST requests to the webhook endpoint")
ACCEPTED = Counter("suprhook_webhooks_accepted", "Events accepted (202): deduplicated and on the broker")
DUPLICATE = Counter("suprhook_webhooks_duplicate", "Redeliveries of an already accepted event (200)")
REJECTED = Counter("suprhook_webhooks_rejected", "Requests refused, by reason (4xx; 409 in_progress, 503 unavailable)",
                   ["reason"])
INGEST_SECONDS = Histogram("suprhook_ingest_duration_seconds", "Time to answer a webhook request, by outcome",
                           ["outcome"], buckets=_LATENCY)
DEDUP_ERRORS = Counter("suprhook_dedup_errors", "Dedup store operations that failed", ["op"])
ENQUEUE_ERRORS = Counter("suprhook_enqueue_errors",
                         "Events that could not be put on the broker (answered 503; embedded broker: or logged)")
VENDOR_DRIFT = Counter("suprhook_vendor_drift", "Accepted events whose vendor_response did not match the vendor's "
                       "documented shape (dispatched with normalized_status=unknown), by vendor", ["vendor"])

rejected = {reason: REJECTED.labels(reason) for reason in REJECT_REASONS}
ingest_seconds = {outcome: INGEST_SECONDS.labels(outcome) for outcome in INGEST_OUTCOMES}
dedup_errors = {op: DEDUP_ERRORS.labels(op) for op in DEDUP_OPS}


def vendor_drift(vendor: str) -> None:
    """Count one accepted event with drift. Only a vendor with a normalizer can drift (schemas.vendors.VENDORS),
    so the label set is bounded, not whatever a payload's vendor_name says."""
    VENDOR_DRIFT.labels(vendor).inc()


# -- worker -----------------------------------------------------------------------------------------
HANDLER_RUNS = Counter("suprhook_handler_runs", "Handler task executions, by handler and outcome "
                       "(failed = will retry; dead = no retry left or PermanentError; skipped = state filter "
                       "did not match; duplicate = the run had already finished)", ["handler", "outcome"])
HANDLER_SECONDS = Histogram("suprhook_handler_duration_seconds", "Time a handler function ran", ["handler"],
                            buckets=_RUN_LATENCY)
FOLLOWUPS_SENT = Counter("suprhook_followups_sent", "Follow-up events SuprSend accepted")
FOLLOWUPS_FAILED = Counter("suprhook_followups_failed", "Follow-up events not sent, by reason (unavailable: "
                           "5xx/429/timeout, retried; rejected: 4xx; invalid: refused before sending)", ["reason"])

EVENTLOG_WRITTEN = Counter("suprhook_eventlog_written", "Accepted events the log writer wrote to the event log")
EVENTLOG_BATCH_SECONDS = Histogram("suprhook_eventlog_batch_duration_seconds",
                                   "Time to write one batch of accepted events to the event log", buckets=_RUN_LATENCY)
EVENTLOG_DEAD = Counter("suprhook_eventlog_dead", "Accepted events the event log refused as data or could not "
                        "read: moved to the dead letter (<stream>:dead / <queue>.dead) for a person to look at")
EVENTLOG_FAILURES = Counter("suprhook_eventlog_write_failures",
                            "Batches the log writer could not write (retried; the events wait on the broker)")

followups_failed = {reason: FOLLOWUPS_FAILED.labels(reason) for reason in FOLLOWUP_FAILURES}
_runs: dict[tuple[str, str], Any] = {}
_run_seconds: dict[str, Any] = {}

run_log = logging.getLogger("suprhook.worker")
_RUN_LEVELS = {"failed": logging.WARNING, "dead": logging.ERROR}


def handler_run(handler: str, outcome: str, attempt: int, event: Any = None, seconds: float | None = None,
                error: BaseException | None = None, event_id: str | None = None, *, mode: str = "hash") -> None:
    """Count one handler task execution and write its log line (`mode`: SUPRHOOK_LOG_DISTINCT_ID)."""
    counter = _runs.get((handler, outcome))
    if counter is None:
        counter = _runs[(handler, outcome)] = HANDLER_RUNS.labels(handler, outcome)
    counter.inc()
    if seconds is not None:
        histogram = _run_seconds.get(handler)
        if histogram is None:
            histogram = _run_seconds[handler] = HANDLER_SECONDS.labels(handler)
        histogram.observe(seconds)
    level = _RUN_LEVELS.get(outcome, logging.INFO)
    if run_log.isEnabledFor(level):
        fields = event_fields(event, mode) if event is not None else {"event_id": event_id}
        fields["handler"], fields["outcome"], fields["attempt"] = handler, outcome, attempt
        fields["latency_ms"] = None if seconds is None else round(seconds * 1000, 2)
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"[:500]
        run_log.log(level, "handler run %s", outcome, extra={FIELDS_ATTR: fields})


# -- exposition -------------------------------------------------------------------------------------
def _collected() -> Any:
    if MULTIPROC_DIR is None:
        return REGISTRY
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed, path=MULTIPROC_DIR)  # reads the files at each scrape
    return summed


REGISTRY_SCRAPED = _collected()  # the sum over every process's files in multiprocess mode, else this process


def render() -> tuple[bytes, str]:
    """The body and content type of a `/metrics` answer."""
    return generate_latest(REGISTRY_SCRAPED), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """For a process that exited (a gunicorn worker, a pool process): drop its live-gauge files."""
    if MULTIPROC_DIR is not None:
        multiprocess.mark_process_dead(pid, MULTIPROC_DIR)
