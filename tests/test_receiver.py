"""Every rejection path over real HTTP: status code, error body naming the problem, nothing enqueued."""
from __future__ import annotations

import json
import socket

import pytest

from suprhook.handlers import ConfigError
from suprhook.handlers.stores.dedup import open_dedup
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.receiver import create_app

from .conftest import LiveServer, make_inbound, make_status, stack_config

TOKENS = "tok-current-0123456789,tok-next-9876543210"


@pytest.fixture
def receiver(tmp_path):
    """A receiver with two accepted tokens and the probe handlers, on the embedded broker."""
    import tests.probe_handlers  # noqa: F401

    app = create_app(stack_config(tmp_path, None, SUPRHOOK_AUTH_TOKENS=TOKENS, SUPRHOOK_ENV="production",
                                  SUPRHOOK_MAX_BODY_BYTES="4096", SUPRHOOK_METRICS_TOKEN="metrics-token-0123456789"))
    server = LiveServer(app)
    server.depth = lambda: queue_depth(app.extensions["suprhook"].settings.broker_url)
    server.settings = app.extensions["suprhook"].settings
    yield server
    server.stop()


TOKEN = "tok-current-0123456789"


def assert_rejected(response, code, field, fragment, receiver):
    assert response.status_code == code, response.text
    body = response.json()
    assert body["status"] == "rejected"
    assert field in body["errors"], body
    assert any(fragment in message for message in body["errors"][field]), body
    assert "Traceback" not in response.text
    assert receiver.depth() == 0  # nothing was enqueued


def test_accepts_a_valid_webhook_and_enqueues(receiver):
    r = receiver.post(make_status(), token=TOKEN)
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    assert r.json()["event_id"].startswith("evt_")
    assert receiver.depth() == 2  # on_status + catch_all


def test_charset_parameter_is_allowed(receiver):
    r = receiver.post(make_status(), token=TOKEN, headers={"Content-Type": "application/json; charset=UTF-8"})
    assert r.status_code == 202


def test_missing_token(receiver):
    r = receiver.post(make_status())
    assert_rejected(r, 401, "Authorization", "missing", receiver)
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_token(receiver):
    assert_rejected(receiver.post(make_status(), token="tok-current-0123456788"), 401, "Authorization",
                    "invalid token", receiver)


def test_wrong_scheme(receiver):
    r = receiver.post(make_status(), headers={"Authorization": f"Basic {TOKEN}"})
    assert_rejected(r, 401, "Authorization", "Bearer", receiver)


def test_rotated_token_both_accepted(receiver):
    assert receiver.post(make_status(), token="tok-current-0123456789").status_code == 202
    assert receiver.post(make_status(), token="tok-next-9876543210").status_code == 202


def test_token_is_never_echoed_or_logged(receiver, caplog):
    secret_guess = "tok-guess-SECRET"
    caplog.set_level("DEBUG")
    r = receiver.post(make_status(), token=secret_guess)
    assert r.status_code == 401 and secret_guess not in r.text
    assert receiver.post(make_status(), token=TOKEN).status_code == 202
    assert secret_guess not in caplog.text and TOKEN not in caplog.text


def test_custom_header_carries_the_bare_token(tmp_path):
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_AUTH_TOKENS="bare-token-1",
                                  SUPRHOOK_AUTH_HEADER="X-Suprsend-Token"))
    server = LiveServer(app)
    try:
        assert server.post(make_status(), headers={"X-Suprsend-Token": "bare-token-1"}).status_code == 202
        r = server.post(make_status(), headers={"X-Suprsend-Token": "Bearer bare-token-1"})
        assert r.status_code == 401 and "X-Suprsend-Token" in r.json()["errors"]
        assert server.post(make_status(), token="bare-token-1").status_code == 401  # wrong header
    finally:
        server.stop()


def test_tokens_are_enforced_in_development_too(tmp_path):
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_AUTH_TOKENS="dev-token"))
    client = app.test_client()
    assert client.post("/webhooks/suprsend", json=make_status()).status_code == 401


def test_production_refuses_to_start_without_tokens(tmp_path):
    with pytest.raises(ConfigError, match="SUPRHOOK_AUTH_TOKENS"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENV="production"))
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_ENV="production", SUPRHOOK_ALLOW_UNAUTHENTICATED="1",
                                  SUPRHOOK_METRICS_PUBLIC="1"))
    assert app.test_client().post("/webhooks/suprsend", json=make_status()).status_code == 202


def test_invalid_json(receiver):
    assert_rejected(receiver.post(data='{"channel": ', token=TOKEN), 400, "$", "invalid JSON", receiver)


@pytest.mark.parametrize("body, fragment", [
    (b"", "empty body"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'\xff\xfe{}', "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b"[]", "Expected a JSON object"),
    (b'"text"', "Expected a JSON object"),
])
def test_bodies_that_are_not_a_webhook(tmp_path, body, fragment):
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_MAX_BODY_BYTES=str(1 << 20)))
    server = LiveServer(app)
    server.depth = lambda: queue_depth(app.extensions["suprhook"].settings.broker_url)
    try:
        assert_rejected(server.post(data=body), 400, "$", fragment, server)
    finally:
        server.stop()


@pytest.mark.parametrize("mutate, field, fragment", [
    (lambda p: p.pop("channel"), "channel", "Missing data"),
    (lambda p: p.pop("event_type"), "event_type", "Missing data"),
    (lambda p: p.update(event_type=""), "event_type", "Shorter than minimum"),
    (lambda p: p.pop("suprsend_status"), "suprsend_status", "Required when event_type is 'status'"),
    (lambda p: p["suprsend_status"].pop("status"), "suprsend_status.status", "Missing data"),
    (lambda p: p["suprsend_status"].update(timestamp="yesterday"), "suprsend_status.timestamp", "millisecond"),
    (lambda p: p["suprsend_status"].update(timestamp=-1), "suprsend_status.timestamp", "out of range"),
    (lambda p: p["reference"].update(supr_nid=42), "reference.supr_nid", "Not a valid string"),
    (lambda p: p.update(distinct_id={"id": 1}), "distinct_id", "identifier"),
    (lambda p: p.update(vendor_response=[1]), "vendor_response", "Not a valid mapping"),
    (lambda p: p.update(channel=7), "channel", "Not a valid string"),
])
def test_schema_errors_name_the_field(receiver, mutate, field, fragment):
    payload = make_status()
    mutate(payload)
    assert_rejected(receiver.post(payload, token=TOKEN), 400, field, fragment, receiver)


def test_inbound_schema_errors_name_nested_fields(receiver):
    payload = make_inbound()
    payload["suprsend_inbound_message"]["text"] = 12
    payload["suprsend_inbound_message"]["button"] = {"payload": ["x"]}
    r = receiver.post(payload, token=TOKEN)
    assert_rejected(r, 400, "suprsend_inbound_message.text", "body", receiver)
    assert "suprsend_inbound_message.button.payload" in r.json()["errors"]


def test_missing_inbound_part(receiver):
    payload = make_inbound()
    del payload["suprsend_inbound_message"]
    assert_rejected(receiver.post(payload, token=TOKEN), 400, "suprsend_inbound_message",
                    "Required when event_type is 'inbound_message'", receiver)


def test_body_over_the_limit_by_content_length(receiver):
    payload = make_status(padding="x" * 5000)
    assert_rejected(receiver.post(payload, token=TOKEN), 413, "$", "4096-byte limit", receiver)


def test_body_over_the_limit_when_chunked(receiver):
    body = json.dumps(make_status(padding="x" * 5000)).encode()
    chunks = iter([body[:2000], body[2000:]])  # a generator makes requests send chunked, no length
    r = receiver.session.post(receiver.url + "/webhooks/suprsend", data=chunks, timeout=10,
                              headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    assert_rejected(r, 413, "$", "limit", receiver)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", None])
def test_wrong_content_type(receiver, content_type):
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    r = receiver.post(make_status(), token=TOKEN, headers=headers)
    assert_rejected(r, 415, "Content-Type", "application/json", receiver)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method(receiver, method):
    r = receiver.session.request(method, receiver.url + "/webhooks/suprsend", timeout=10)
    assert_rejected(r, 405, "$", "not allowed", receiver)
    assert "POST" in r.headers["Allow"]


def test_unknown_path_is_json_404(receiver):
    r = receiver.session.get(receiver.url + "/nope", timeout=10)
    assert r.status_code == 404 and r.json()["status"] == "rejected"


def test_event_already_being_accepted_is_409_and_retryable(receiver):
    payload = make_status()
    from suprhook.schemas import load_event

    event_id = load_event(payload).event_id
    open_dedup(receiver.settings.dedup_url, 60).claim(event_id)  # another request holds the lease
    r = receiver.post(payload, token=TOKEN)
    assert r.status_code == 409 and r.headers["Retry-After"] == "1"
    assert r.json() == {"status": "in_progress", "event_id": event_id}
    assert receiver.depth() == 0


def test_health_and_readiness(receiver):
    assert receiver.session.get(receiver.url + "/healthz").json() == {"status": "ok"}
    ready = receiver.session.get(receiver.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": "ok", "dedup": "ok", "store": "ok"}


def test_readiness_fails_when_broker_is_unreachable(tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(stack_config(tmp_path, f"redis://127.0.0.1:{port}/0"))
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"]["broker"].startswith("unreachable") and r.json["checks"]["dedup"] == "ok"
    assert "store" not in r.json["checks"]  # the event log is the worker's (a log queue): no readiness check


def test_readiness_gives_a_short_public_reason_without_hosts_or_credentials(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = create_app(stack_config(tmp_path / "a", f"redis://:hunter2@127.0.0.1:{port}/0",
                                      SUPRHOOK_DEDUP_URL=f"redis://:hunter2@127.0.0.1:{port}/1"))
    r = refused.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"] == {"broker": "unreachable: connection refused", "dedup": "unreachable: connection refused"}
    mistyped = create_app(stack_config(tmp_path / "b", "redsi://127.0.0.1:6379/0"))  # a typo for redis://
    r2 = mistyped.test_client().get("/readyz")
    assert r2.status_code == 503 and r2.json["checks"]["broker"] == "unsupported URL scheme"
    for text in (r.get_data(as_text=True), r2.get_data(as_text=True)):
        assert "127.0.0.1" not in text and str(port) not in text and "hunter2" not in text and "redis" not in text


def test_wsgi_entry_point_is_production_and_refuses_without_tokens(tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_"))}
    env.update(SUPRHOOK_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    code = "import wsgi; print(wsgi.app.extensions['suprhook'].settings.env)"
    refused = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "refusing to start in production" in refused.stderr
    open_metrics = subprocess.run([sys.executable, "-c", code], env={**env, "SUPRHOOK_AUTH_TOKENS": "t1"},
                                  capture_output=True, text=True, timeout=60)
    assert open_metrics.returncode != 0 and "SUPRHOOK_METRICS_TOKEN" in open_metrics.stderr
    started = subprocess.run([sys.executable, "-c", code], env={**env, "SUPRHOOK_AUTH_TOKENS": "t1",
                                                                "SUPRHOOK_METRICS_TOKEN": "m1"},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "production"


@pytest.mark.parametrize("body, fragment", [
    (b'{"channel": "whatsapp", "event_type": "status", "n": ' + b"9" * 5000 + b"}", "invalid JSON"),
    (b'{"channel": "whatsapp", "event_type": "status", "n": 1e400}', "out of range"),
    (b'{"channel": "\\ud800", "event_type": "status"}', "surrogate"),
    (b'{"channel": "whatsapp", "event_type": "x", "deep": ' + b"[" * 70 + b"]" * 70 + b"}", "64 levels"),
])
def test_review_inputs_that_used_to_500_are_400(tmp_path, body, fragment):
    """Found in review: each of these reached a 500 (or an un-retryable 503) before."""
    app = create_app(stack_config(tmp_path, None))
    server = LiveServer(app)
    server.depth = lambda: queue_depth(app.extensions["suprhook"].settings.broker_url)
    try:
        assert_rejected(server.post(data=body), 400, "$", fragment, server)
    finally:
        server.stop()


def test_non_ascii_digits_are_not_a_timestamp(receiver):
    payload = make_status()
    payload["suprsend_status"]["timestamp"] = "\u00b2"  # isdigit() is True, int() fails
    assert_rejected(receiver.post(payload, token=TOKEN), 400, "suprsend_status.timestamp", "millisecond", receiver)
    payload["suprsend_status"]["timestamp"] = "\u0661\u0662\u0663"  # Arabic-Indic digits
    assert_rejected(receiver.post(payload, token=TOKEN), 400, "suprsend_status.timestamp", "millisecond", receiver)


def test_boolean_version_is_refused(receiver):
    assert_rejected(receiver.post(make_status(version=True), token=TOKEN), 400, "version", "version", receiver)


def test_the_raw_body_and_safe_headers_are_logged(receiver):
    from suprhook.handlers.stores.store import EventStore

    raw = json.dumps(make_status(), indent=1)  # exactly these bytes, spacing included
    r = receiver.post(data=raw, token=TOKEN, headers={"X-Request-Id": "req-7", "User-Agent": "suprsend/1"})
    assert r.status_code == 202
    store = EventStore(receiver.settings.store_url)
    with store.engine.connect() as conn:
        from sqlalchemy import select

        from suprhook.handlers.stores.store import events
        row = conn.execute(select(events.c.body, events.c.headers).where(
            events.c.event_id == r.json()["event_id"])).first()
    assert row.body == raw
    logged = json.loads(row.headers)
    assert logged["X-Request-Id"] == "req-7" and logged["User-Agent"] == "suprsend/1"
    assert "Authorization" not in logged and TOKEN not in row.headers
