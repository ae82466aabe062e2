"""`GET /metrics` and the worker's metrics port: counters move exactly as requests and handler runs go.

Receiver counters are read over real HTTP from the live receiver (deltas: this process's counters are
shared by every test in it); handler-run counters from a real Celery worker's metrics port, summed
over its pool processes (prometheus_client multiprocess mode); and two gunicorn workers sharing one
PROMETHEUS_MULTIPROC_DIR give the same totals whichever of them answers the scrape.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from suprhook.handlers import on
from suprhook.handlers.messages import task_message
from suprhook.receiver import create_app
from suprhook.schemas import load_event

from .conftest import REPO, LiveServer, Worker, make_status, stack_config, stop_group, wait_until

TOKEN = "tok-metrics-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str, **headers: str) -> Samples:
    r = requests.get(url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


class Gunicorn:
    """`gunicorn -c python:suprhook.handlers.web.gunicorn_conf wsgi:app` on a free port; stdout+stderr to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 1) -> None:
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(log_path, "a")
        from gunicorn.config import Config

        # recent gunicorn opens a control socket in ~/.gunicorn by default, one path for every master here
        private = ["--no-control-socket"] if "control_socket_disable" in Config().settings else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:suprhook.handlers.web.gunicorn_conf", "-w", str(workers),
             "-b", self.url.removeprefix("http://"), *private, "wsgi:app"],
            cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(lambda: self._up() or self.proc.poll() is not None, 60) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def post(self, payload: Any, **headers: str) -> requests.Response:
        return requests.post(self.url + "/webhooks/suprsend", data=json.dumps(payload), timeout=10,
                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
                                      "Connection": "close", **headers})

    def json_lines(self) -> list[dict[str, Any]]:
        self.log.flush()
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        stop_group(self.proc)
        self.log.close()


# --------------------------------------------------------------------------------------------------
# Receiver, in this process


@pytest.fixture
def serve(tmp_path):
    """`serve(**settings)`: a live receiver with the probe handlers on its own embedded broker."""
    import tests.probe_handlers  # noqa: F401

    servers: list[LiveServer] = []

    def start(**extra: str) -> LiveServer:
        app = create_app(stack_config(tmp_path / f"stack{len(servers)}", None, **extra))
        server = LiveServer(app)
        server.app = app
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_counters_move_across_accepted_duplicate_and_rejections(serve):
    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_MAX_BODY_BYTES="4096")
    before = scrape(server.url)
    first, second = make_status(), make_status()
    assert server.post(first, token=TOKEN).status_code == 202
    assert server.post(second, token=TOKEN).status_code == 202
    assert server.post(first, token=TOKEN).status_code == 200  # duplicate
    assert server.post(make_status()).status_code == 401  # no token
    assert server.post(make_status(), token="tok-wrong-0000000000").status_code == 401
    assert server.post(data="x" * 5000, token=TOKEN).status_code == 413
    assert server.post(make_status(), token=TOKEN, headers={"Content-Type": "text/plain"}).status_code == 415
    assert server.post(data="{not json", token=TOKEN).status_code == 400
    assert server.post({"channel": "whatsapp"}, token=TOKEN).status_code == 400  # schema
    busy = make_status()
    server.app.extensions["suprhook"].dispatcher.dedup.claim(load_event(busy).event_id)  # "another request"
    assert server.post(busy, token=TOKEN).status_code == 409
    after = scrape(server.url)

    assert delta(before, after, "suprhook_webhooks_received_total") == 10
    assert delta(before, after, "suprhook_webhooks_accepted_total") == 2
    assert delta(before, after, "suprhook_webhooks_duplicate_total") == 1
    expected = {"auth": 2, "size": 1, "content_type": 1, "body": 1, "schema": 1, "in_progress": 1,
                "signature": 0, "ip": 0, "rate_limited": 0, "unavailable": 0}
    assert {reason: delta(before, after, "suprhook_webhooks_rejected_total", reason=reason)
            for reason in expected} == expected
    for outcome, count in (("accepted", 2), ("duplicate", 1), ("rejected", 7)):
        assert delta(before, after, "suprhook_ingest_duration_seconds_count", outcome=outcome) == count
        assert delta(before, after, "suprhook_ingest_duration_seconds_bucket", outcome=outcome, le="+Inf") == count
    assert delta(before, after, "suprhook_ingest_duration_seconds_sum", outcome="accepted") > 0


def test_source_and_signature_rejections_are_counted_by_reason(serve):
    blocked = serve(SUPRHOOK_ALLOWED_IPS="10.0.0.0/8")
    limited = serve(SUPRHOOK_RATE_LIMIT="1", SUPRHOOK_RATE_LIMIT_BURST="1")
    signed = serve(SUPRHOOK_SIGNING_SECRET="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtMDEyMzQ1Njc4OQ==")
    before = scrape(signed.url)
    assert blocked.post(make_status()).status_code == 403
    assert limited.post(make_status()).status_code == 202
    assert limited.post(make_status()).status_code == 429
    assert signed.post(make_status()).status_code == 401
    after = scrape(signed.url)  # one process, one set of counters, whichever app answers
    for reason in ("ip", "rate_limited", "signature"):
        assert delta(before, after, "suprhook_webhooks_rejected_total", reason=reason) == 1, reason
    assert delta(before, after, "suprhook_webhooks_accepted_total") == 1


def test_broker_and_dedup_outages_are_counted(serve):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    no_broker = serve(CELERY_BROKER_URL=dead, SUPRHOOK_PUBLISH_TIMEOUT="0.2")
    no_dedup = serve(SUPRHOOK_DEDUP_URL=dead)
    before = scrape(no_broker.url)
    assert no_broker.post(make_status()).status_code == 503
    assert no_dedup.post(make_status()).status_code == 503
    after = scrape(no_broker.url)
    assert delta(before, after, "suprhook_webhooks_rejected_total", reason="unavailable") == 2
    assert delta(before, after, "suprhook_enqueue_errors_total") == 1
    assert delta(before, after, "suprhook_dedup_errors_total", op="claim") == 1
    assert delta(before, after, "suprhook_webhooks_accepted_total") == 0


def test_vendor_drift_is_counted_once_per_accepted_event(serve):
    server = serve()
    drifted = make_status(vendor_response={"gupshup": {"response": "not a list of reports"}})
    assert load_event(drifted).vendor.drift  # the shape schemas.vendors.gupshup does not recognise
    before = scrape(server.url)
    assert server.post(drifted).status_code == 202
    assert server.post(drifted).status_code == 200  # the redelivery is a duplicate: not counted again
    assert server.post(make_status()).status_code == 202  # a recognised shape: no drift
    assert server.post({**drifted, "channel": 5}).status_code == 400  # rejected: not counted
    after = scrape(server.url)
    assert delta(before, after, "suprhook_vendor_drift_total", vendor="gupshup") == 1
    assert sum(v for (name, _), v in after.items() if name == "suprhook_vendor_drift_total") \
        - sum(v for (name, _), v in before.items() if name == "suprhook_vendor_drift_total") == 1


def test_metrics_token_guards_the_endpoint(serve):
    server = serve(SUPRHOOK_METRICS_TOKEN="metrics-secret-42")
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 401
    wrong = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and "metrics-secret-42" not in wrong.text
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    samples = scrape(server.url, Authorization="Bearer metrics-secret-42")
    assert ("suprhook_webhooks_received_total", ()) in samples


def test_production_refuses_an_open_metrics_endpoint_unless_told(tmp_path):
    """/metrics shares the webhook's public port: production needs a token, SUPRHOOK_METRICS=off, or an
    explicit SUPRHOOK_METRICS_PUBLIC=1; development stays open."""
    from suprhook.handlers import ConfigError

    production = {"SUPRHOOK_ENV": "production", "SUPRHOOK_AUTH_TOKENS": TOKEN}
    with pytest.raises(ConfigError) as info:
        create_app(stack_config(tmp_path / "a", None, **production))
    message = str(info.value)
    assert message.startswith("refusing to start in production with GET /metrics open")
    assert all(name in message for name in ("SUPRHOOK_METRICS_TOKEN", "SUPRHOOK_METRICS=off",
                                            "SUPRHOOK_METRICS_PUBLIC=1"))

    guarded = create_app(stack_config(tmp_path / "b", None, **production,
                                      SUPRHOOK_METRICS_TOKEN="m-token")).test_client()
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer m-token"}).status_code == 200
    public = create_app(stack_config(tmp_path / "c", None, **production, SUPRHOOK_METRICS_PUBLIC="1")).test_client()
    assert public.get("/metrics").status_code == 200
    off = create_app(stack_config(tmp_path / "d", None, **production, SUPRHOOK_METRICS="off")).test_client()
    r = off.get("/metrics")
    assert r.status_code == 404 and r.json["status"] == "rejected"
    assert off.get("/metrics", headers={"Authorization": "Bearer m-token"}).status_code == 404
    assert off.post("/webhooks/suprsend", json=make_status(), headers={"Authorization": f"Bearer {TOKEN}"}
                    ).status_code == 202  # the webhook is served as usual
    development = create_app(stack_config(tmp_path / "e", None)).test_client()
    assert development.get("/metrics").status_code == 200
    with pytest.raises(ConfigError, match="SUPRHOOK_METRICS must be on or off, got 'maybe'"):
        create_app(stack_config(tmp_path / "f", None, SUPRHOOK_METRICS="maybe"))


def test_request_id_is_echoed_or_made(serve):
    server = serve()
    assert server.post(make_status(), headers={"X-Request-Id": "req-42.a"}).headers["X-Request-Id"] == "req-42.a"
    made = server.post(make_status(), headers={"X-Request-Id": "bad id\twith spaces"}).headers["X-Request-Id"]
    assert made != "bad id\twith spaces" and len(made) == 32
    assert server.post(data="{", headers={}).headers["X-Request-Id"]  # rejections carry one too


# --------------------------------------------------------------------------------------------------
# Worker: handler runs summed over its pool processes, on its metrics port


@pytest.fixture
def worker_stack(tmp_path):
    import tests.probe_handlers  # noqa: F401

    port = free_port()
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers",
                          SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"))
    app = create_app(config)
    server = LiveServer(app)
    worker = Worker({**config, "SUPRHOOK_WORKER_METRICS_PORT": str(port),
                     "SUPRHOOK_WORKER_METRICS_ADDR": "127.0.0.1"}, tmp_path / "probe", concurrency=2)
    worker.metrics_url = f"http://127.0.0.1:{port}"
    server.app, server.config = app, config
    yield server, worker
    worker.stop()
    server.stop()


def _runs(samples: Samples, handler: str, outcome: str) -> float:
    return value(samples, "suprhook_handler_runs_total", handler=f"tests.probe_handlers.{handler}", outcome=outcome)


def test_worker_metrics_count_handler_outcomes(worker_stack):
    server, worker = worker_stack
    plain = server.post(make_status("delivered"))
    flaky = server.post(make_status("delivered", workflow_name="Flaky", probe_fail_times=1))
    broken = server.post(make_status("delivered", workflow_name="Broken"))
    assert plain.status_code == flaky.status_code == broken.status_code == 202
    expected = {("on_status", "succeeded"): 3, ("catch_all", "succeeded"): 3, ("flaky", "failed"): 1,
                ("flaky", "succeeded"): 1, ("broken", "dead"): 1}

    def counts() -> dict[tuple[str, str], float]:
        try:
            samples = scrape(worker.metrics_url)
        except requests.RequestException:  # the port opens on worker_ready
            return {}
        return {key: _runs(samples, *key) for key in expected}

    assert wait_until(lambda: counts() == expected, 30), (counts(), worker.output())
    # The same task once more (a redelivery after success): bookkeeping skips it, the metric says so.
    handler = on.get("tests.probe_handlers.on_status")
    event_id = plain.json()["event_id"]
    server.app.extensions["suprhook"].dispatcher.celery.send_task(
        handler.task_name, args=[task_message(event_id, make_status())], queue=server.config["SUPRHOOK_QUEUE"])
    assert wait_until(lambda: _runs(scrape(worker.metrics_url), "on_status", "duplicate") == 1, 20), worker.output()
    samples = scrape(worker.metrics_url)
    assert value(samples, "suprhook_handler_duration_seconds_count", handler="tests.probe_handlers.on_status") == 3
    assert value(samples, "suprhook_handler_duration_seconds_count", handler="tests.probe_handlers.flaky") == 2
    assert value(samples, "suprhook_handler_duration_seconds_sum", handler="tests.probe_handlers.flaky") > 0
    assert len(worker.runs(event_id, "on_status")) == 1  # counted, not run


# --------------------------------------------------------------------------------------------------
# gunicorn: two workers, one sum


def test_two_gunicorn_workers_report_one_total(tmp_path):
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_999999.db").write_bytes(b"left over from a previous run")  # emptied at start
    env = {**stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers"),
           "SUPRHOOK_ENV": "production", "SUPRHOOK_AUTH_TOKENS": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(prom),
           "SUPRHOOK_METRICS_PUBLIC": "1"}  # production refuses an open /metrics unless told it is not public
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=2)
    try:
        assert not (prom / "counter_999999.db").exists()
        posted = 0

        def two_workers_answered() -> bool:
            nonlocal posted
            assert server.post(make_status()).status_code == 202
            posted += 1
            return len({line["pid"] for line in server.json_lines() if line["msg"] == "webhook accepted"}) == 2

        assert wait_until(two_workers_answered, 60, interval=0), server.log_path.read_text()[-3000:]
        assert server.post(make_status(), Authorization="Bearer wrong-token-000000").status_code == 401
        for _ in range(6):  # whichever worker answers the scrape, it sums both
            samples = scrape(server.url)
            assert value(samples, "suprhook_webhooks_accepted_total") == posted
            assert value(samples, "suprhook_webhooks_rejected_total", reason="auth") == 1
            assert value(samples, "suprhook_ingest_duration_seconds_count", outcome="accepted") == posted
        # A worker that exits keeps its counts in the sum (gunicorn starts a new one).
        victim = next(line["pid"] for line in server.json_lines() if line["msg"] == "webhook accepted")
        os.kill(victim, signal.SIGTERM)
        assert wait_until(lambda: server._up() and value(scrape(server.url), "suprhook_webhooks_accepted_total")
                          == posted, 30)
        assert server.post(make_status()).status_code == 202
        assert wait_until(lambda: value(scrape(server.url), "suprhook_webhooks_accepted_total") == posted + 1, 10)
    finally:
        server.stop()
