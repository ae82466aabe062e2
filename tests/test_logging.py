"""Structured logs: the formatters and masking, then real lines from gunicorn and a Celery worker, tied
together by the correlation id that travels from the request to the handler run."""
from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import subprocess
import sys
import uuid

import pytest

from suprhook.handlers import ConfigError, Settings
from suprhook.handlers.observability.jsonlog import (FIELDS_ATTR, JsonFormatter, TextFormatter, bind_run,
                                                    mask_distinct_id, new_correlation_id, setup_logging)

from .conftest import REPO, Worker, make_status, stack_config, wait_until
from .test_metrics import TOKEN, Gunicorn

USER = "user@example.com"  # the seed payload's distinct_id
USER_HASH = "sha256:" + hashlib.sha256(USER.encode()).hexdigest()[:16]


def test_distinct_id_is_hashed_by_default_masked_or_plain_on_request():
    assert mask_distinct_id(USER) == USER_HASH  # the default, as SUPRHOOK_LOG_DISTINCT_ID's
    assert mask_distinct_id(USER, "hash") == USER_HASH
    assert mask_distinct_id(USER, "mask") == "u***@example.com"
    assert mask_distinct_id("+919876543210", "mask") == "+9***10"
    assert mask_distinct_id("abc", "mask") == "***"
    assert mask_distinct_id(USER, "plain") == USER
    assert mask_distinct_id(None) is None and mask_distinct_id("") is None


def test_the_hash_can_be_computed_to_find_a_users_lines():
    out = subprocess.run([sys.executable, "-m", "suprhook.handlers.observability.jsonlog", USER], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == [USER_HASH, USER]


def _record(msg: str, fields: dict | None = None, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("suprhook.receiver", logging.INFO, __file__, 1, msg, (), exc_info)
    if fields is not None:
        setattr(record, FIELDS_ATTR, fields)
    return record


def test_json_line_has_context_fields_and_no_nones():
    def in_a_request() -> dict:
        cid = new_correlation_id("req-77")
        assert cid == "req-77"
        return json.loads(JsonFormatter().format(_record("webhook accepted", {
            "event_id": "evt_1", "supr_nid": None, "code": 202, "latency_ms": 1.5}, exc=True)))

    line = contextvars.copy_context().run(in_a_request)
    assert line["msg"] == "webhook accepted" and line["level"] == "info" and line["logger"] == "suprhook.receiver"
    assert line["correlation_id"] == "req-77" and line["event_id"] == "evt_1" and line["code"] == 202
    assert "supr_nid" not in line and "ValueError: boom" in line["exc"]
    assert line["ts"].endswith("Z") and isinstance(line["pid"], int)


def test_text_line_is_for_people_and_carries_the_run_context():
    def in_a_run() -> str:
        bind_run("cid-9", "evt_2", "app.on_reply")
        return TextFormatter().format(_record("handler run failed", {"outcome": "failed", "error": "E: a b"}))

    text = contextvars.copy_context().run(in_a_run)
    assert "INFO" in text and "suprhook.receiver handler run failed" in text
    assert "event_id=evt_2 handler=app.on_reply outcome=failed" in text
    assert 'error="E: a b"' in text and text.endswith("cid=cid-9")


def test_an_unsafe_request_id_is_replaced():
    def bind(value: str | None) -> str:
        return contextvars.copy_context().run(new_correlation_id, value)

    assert bind("abc-DEF_1.2:3") == "abc-DEF_1.2:3"
    for bad in (None, "", "has space", "x" * 129, 'quote"', "new\nline"):
        made = bind(bad)
        assert made != bad and len(made) == 32


def test_format_defaults_to_json_in_production_and_text_in_development():
    assert Settings.load({}, environ={}).log_format == "json"
    assert Settings.load({"SUPRHOOK_ENV": "development"}, environ={}).log_format == "text"
    forced = Settings.load({"SUPRHOOK_ENV": "development", "SUPRHOOK_LOG_FORMAT": "JSON"}, environ={})
    assert forced.log_format == "json"


@pytest.mark.parametrize("key,value", [("SUPRHOOK_LOG_FORMAT", "xml"), ("SUPRHOOK_LOG_DISTINCT_ID", "rot13"),
                                       ("SUPRHOOK_LOG_LEVEL", "LOUD")])
def test_bad_log_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        setup_logging(Settings.load({key: value}, environ={}))


# --------------------------------------------------------------------------------------------------
# Real processes: gunicorn (production, JSON by default) and a worker


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("logging")
    config = stack_config(data_dir, None, SUPRHOOK_HANDLERS="tests.probe_handlers,tests.probe_logging",
                          SUPRHOOK_PROBE_DIR=str(data_dir / "probe"), SUPRHOOK_ENV="production",
                          SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_METRICS_TOKEN="metrics-token-0123456789")
    server = Gunicorn(config, data_dir / "gunicorn.log")
    worker = Worker(config, data_dir / "probe")
    yield server, worker
    worker.stop()
    server.stop()


def worker_lines(worker: Worker) -> list[dict]:
    text = (worker.probe_dir / "worker.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_line_per_event_and_per_run_with_one_correlation_id(stack):
    server, worker = stack
    request_id = f"corr-{uuid.uuid4().hex}"
    payload = make_status("delivered", workflow_name="Logged")
    r = server.post(payload, **{"X-Request-Id": request_id})
    assert r.status_code == 202 and r.headers["X-Request-Id"] == request_id
    event_id = r.json()["event_id"]

    received = [line for line in server.json_lines() if line.get("correlation_id") == request_id]
    assert len(received) == 1, received
    line = received[0]
    assert line["logger"] == "suprhook.receiver" and line["level"] == "info" and line["msg"] == "webhook accepted"
    assert {k: line[k] for k in ("event_id", "supr_nid", "distinct_id", "channel", "type", "status", "outcome",
                                 "code", "handlers")} == {
        "event_id": event_id, "supr_nid": payload["reference"]["supr_nid"], "distinct_id": USER_HASH,
        "channel": "whatsapp", "type": "status", "status": "delivered", "outcome": "accepted", "code": 202,
        "handlers": 3}
    assert line["latency_ms"] > 0

    def runs() -> list[dict]:
        return [x for x in worker_lines(worker) if x.get("correlation_id") == request_id  # Celery's own lines
                and x["logger"].startswith("suprhook")]                                    # carry it too

    assert wait_until(lambda: len(runs()) == 4, 30), worker.output()  # 3 run lines + the handler's own line
    by_handler = {x["handler"]: x for x in runs() if x["msg"] == "handler run succeeded"}
    assert set(by_handler) == {"tests.probe_handlers.on_status", "tests.probe_handlers.catch_all",
                               "tests.probe_logging.logged"}
    for run in by_handler.values():
        assert run["logger"] == "suprhook.worker" and run["outcome"] == "succeeded" and run["attempt"] == 0
        assert run["event_id"] == event_id and run["distinct_id"] == USER_HASH and run["type"] == "status"
        assert isinstance(run["latency_ms"], float)
    own = next(x for x in runs() if x["logger"] == "suprhook.handler.tests.probe_logging.logged")
    assert own["msg"] == f"handled {event_id}" and own["event_id"] == event_id
    assert own["handler"] == "tests.probe_logging.logged"
    everything = (worker.probe_dir / "worker.log").read_text() + server.log_path.read_text()
    assert USER not in everything  # hashed everywhere


def test_a_dead_run_and_a_rejection_are_logged_with_a_made_up_correlation_id(stack):
    server, worker = stack
    r = server.post(make_status("delivered", workflow_name="Broken"))
    assert r.status_code == 202
    request_id = r.headers["X-Request-Id"]  # none was sent: the receiver made one
    assert wait_until(lambda: [x for x in worker_lines(worker) if x.get("correlation_id") == request_id
                               and x["msg"] == "handler run dead"], 30), worker.output()
    dead = next(x for x in worker_lines(worker) if x.get("correlation_id") == request_id
                and x["msg"] == "handler run dead")
    assert dead["level"] == "error" and dead["handler"] == "tests.probe_handlers.broken"
    assert dead["error"] == "PermanentError: this handler never succeeds"

    refused = server.post(make_status(), Authorization="Bearer tok-not-ours-000000")
    assert refused.status_code == 401
    line = next(x for x in server.json_lines() if x.get("correlation_id") == refused.headers["X-Request-Id"])
    assert line["msg"] == "webhook rejected" and line["reason"] == "auth" and line["code"] == 401
    assert line["client"] == "127.0.0.1" and "event_id" not in line
    assert "tok-not-ours" not in server.log_path.read_text()


def test_every_line_a_json_worker_writes_is_json(tmp_path):
    """Celery's banner, its "Task ... received/succeeded" lines, retries and tracebacks, a handler's own prints
    and the warm-shutdown notice: with SUPRHOOK_LOG_FORMAT=json, one JSON object per line, nothing else."""
    from suprhook.receiver import create_app

    probe = tmp_path / "probe"
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers,tests.probe_logging",
                          SUPRHOOK_PROBE_DIR=str(probe), SUPRHOOK_LOG_FORMAT="json")
    worker = Worker(config, probe)
    try:
        client = create_app(config).test_client()
        posted = {name: client.post("/webhooks/suprsend", json=payload).json["event_id"] for name, payload in (
            ("ok", make_status("delivered")),
            ("flaky", make_status("delivered", workflow_name="Flaky", probe_fail_times=1)),
            ("raises", make_status("delivered", workflow_name="Printed")))}

        def finished() -> bool:
            lines = worker_lines(worker)
            return (any(x["msg"] == "handler run dead" and x.get("event_id") == posted["raises"] for x in lines)
                    and len(worker.runs(posted["flaky"], "flaky")) == 1
                    and len(worker.runs(posted["ok"], "on_status")) == 1)

        assert wait_until(finished, 60), worker.output()
    finally:
        worker.stop()
    text = (probe / "worker.log").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    not_json = []
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            not_json.append(line)
    assert not not_json, "\n".join(not_json[:40])
    parsed = [json.loads(line) for line in lines]
    msgs = [x["msg"] for x in parsed]
    assert any(x["msg"] == "celery worker starting" and x.get("hostname") for x in parsed), msgs[:10]
    assert any(m.startswith("Task ") and " received" in m for m in msgs), msgs
    assert any(m.startswith("Task ") and " succeeded in " in m for m in msgs), msgs
    assert any(f"printed to stdout {posted['raises']}" in m for m in msgs), msgs
    assert any(f"printed to stderr {posted['raises']}" in m for m in msgs), msgs
    traced = [x for x in parsed if "Traceback" in x.get("exc", "")]
    assert any(f"raised by the handler {posted['raises']}" in x["exc"] for x in traced), msgs
    assert any(" retry: " in m and "planned failure 0" in m for m in msgs), msgs  # Celery logs no trace for it
    assert any("Warm shutdown" in m for m in msgs), msgs
    assert {x["level"] for x in parsed} <= {"debug", "info", "warning", "error", "critical"}
