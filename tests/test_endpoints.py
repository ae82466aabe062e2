"""Several endpoints (SuprSend: one endpoint per event type or channel, or all at one URL), over real HTTP.

Each named endpoint has its path, its own tokens (or signing secrets) and the event types/channels it
accepts; an event it does not accept is a 422 naming the misconfiguration, with nothing enqueued or
logged, and counted as `wrong_endpoint`.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import jsonschema
import pytest
import requests
from flask import Flask
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from suprhook.handlers import ConfigError
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.handlers.observability.jsonlog import FIELDS_ATTR
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import Endpoint, create_app, init_app
from suprhook.receiver.endpoints import parse_endpoints
from suprhook.schemas import load_event

from .conftest import REPO, LiveServer, Worker, make_inbound, make_status, stack_config
from .test_security import SECRET_OLD, body_of, sign

SPEC = ("status:/webhooks/suprsend/status:event_type=status;"
        "replies:/webhooks/suprsend/replies:event_type=inbound_message:channel=whatsapp|sms")
GLOBAL, STATUS_TOKEN, REPLIES_TOKEN = "tok-global-000000001", "tok-status-000000001", "tok-replies-00000001"
STATUS_PATH, REPLIES_PATH = "/webhooks/suprsend/status", "/webhooks/suprsend/replies"


def start(tmp_path, endpoints=(), **extra: str) -> LiveServer:
    """A live receiver with the probe handlers on its own embedded broker; `.depth()`, `.logged(id)`."""
    import tests.probe_handlers  # noqa: F401

    app = create_app(stack_config(tmp_path, None, **extra), endpoints=endpoints)
    server = LiveServer(app)
    server.app, server.state = app, app.extensions["suprhook"]
    settings = server.state.settings
    server.depth = lambda: queue_depth(settings.broker_url)
    store = EventStore(settings.store_url)
    server.logged = lambda event_id: store.recent_events(10, event_ids=[event_id])
    return server


@pytest.fixture
def env_server(tmp_path):
    """Endpoints from SUPRHOOK_ENDPOINTS, each with its own tokens, in production mode."""
    server = start(tmp_path, SUPRHOOK_ENV="production", SUPRHOOK_AUTH_TOKENS=GLOBAL, SUPRHOOK_ENDPOINTS=SPEC,
                   SUPRHOOK_ENDPOINT_STATUS_TOKENS=STATUS_TOKEN, SUPRHOOK_ENDPOINT_REPLIES_TOKENS=REPLIES_TOKEN,
                   SUPRHOOK_METRICS_PUBLIC="1")  # scraped without a token below
    yield server
    server.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def wrong_endpoint_count(url: str) -> float:
    return scrape(url).get(("suprhook_webhooks_rejected_total", (("reason", "wrong_endpoint"),)), 0.0)


# --------------------------------------------------------------------------------------------------
# Declaring endpoints: the environment format and its errors


def test_env_format_is_parsed():
    status, replies, anything = parse_endpoints(f" {SPEC} ;\n anything : /hooks/all ;")
    assert (status.name, status.path, status.event_types, status.channels) == (
        "status", STATUS_PATH, frozenset({"status"}), None)
    assert (replies.name, replies.path, replies.event_types, replies.channels) == (
        "replies", REPLIES_PATH, frozenset({"inbound_message"}), frozenset({"whatsapp", "sms"}))
    assert anything.describe() == "(every event)" and anything.accepts("whatever", "email")
    assert replies.describe() == "event_type=inbound_message channel=sms|whatsapp"
    assert replies.accepts("inbound_message", "sms") and not replies.accepts("inbound_message", "email")
    assert not replies.accepts("status", "whatsapp")
    assert parse_endpoints("") == parse_endpoints(" ; ") == []


@pytest.mark.parametrize("spec, fragment", [
    ("status", "entry #1 'status' is not name:/path[:event_type=a|b][:channel=c|d]"),
    ("status:", "is not name:/path"),
    ("status:/s:event_type", "'event_type' is not event_type=... or channel=..."),
    ("status:/s:kind=status", "'kind=status' is not event_type=... or channel=..."),
    ("status:/s:event_type=status:event_type=inbound_message", "event_type is given twice"),
    ("status:/s:channel=sms|", "channel has an empty value"),
    ("status:/s:event_type=Status!", "event_type value 'Status!' is not a SuprSend event_type"),
    ("Status:/s", "endpoint name 'Status' must be 1 to 40 lowercase letters"),
    ("my-hook:/s", "endpoint name 'my-hook' must be"),
    ("status:webhooks/status", "path 'webhooks/status' must be '/' followed by segments"),
    ("status:/webhooks/status/", "no trailing '/'"),
    ("status:/webhooks//status", "no '//'"),
    ("status:/webhooks/../metrics", "no '.' or '..'"),
    ("status:/webhooks/<id>", "must be '/' followed by segments"),
    ("ok:/ok;bad:/bad:channel=", "entry #2 'bad:/bad:channel='"),
])
def test_bad_env_format_is_a_config_error_naming_the_entry(tmp_path, spec, fragment):
    with pytest.raises(ConfigError) as info:
        parse_endpoints(spec)
    assert fragment in str(info.value) and str(info.value).startswith("SUPRHOOK_ENDPOINTS: entry #")
    with pytest.raises(ConfigError, match="SUPRHOOK_ENDPOINTS: entry #"):  # the receiver refuses to start
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENDPOINTS=spec))


@pytest.mark.parametrize("endpoints, fragment", [
    ([Endpoint("health", "/healthz")], "path /healthz is taken by the liveness check"),
    ([Endpoint("ready", "/readyz")], "path /readyz is taken by the readiness check"),
    ([Endpoint("prom", "/metrics")], "path /metrics is taken by the Prometheus metrics"),
    ([Endpoint("doc", "/openapi.json")], "path /openapi.json is taken by the OpenAPI document"),
    ([Endpoint("all", "/webhooks/suprsend")], "path /webhooks/suprsend is taken by the default endpoint"),
    ([Endpoint("default", "/hooks/default")], "endpoint name 'default' is taken by /webhooks/suprsend"),
    ([Endpoint("a", "/hooks/x"), Endpoint("b", "/hooks/x")], "endpoints 'a' and 'b' both use the path /hooks/x"),
    ([Endpoint("status", "/hooks/x")], "endpoint 'status' is declared twice"),  # also in SUPRHOOK_ENDPOINTS
    ([Endpoint("replies2", REPLIES_PATH)], f"endpoints 'replies' and 'replies2' both use the path {REPLIES_PATH}"),
])
def test_path_and_name_collisions_are_refused(tmp_path, endpoints, fragment):
    with pytest.raises(ConfigError) as info:
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENDPOINTS=SPEC), endpoints=endpoints)
    assert fragment in str(info.value)


def test_code_values_are_validated_and_credentials_stay_out_of_repr():
    with pytest.raises(ConfigError, match="event_type is empty, so it would accept nothing"):
        Endpoint("none", "/hooks/none", event_types=[])
    endpoint = Endpoint("x", "/hooks/x", tokens="tok-secret-1, tok-secret-2", signing_secrets=[SECRET_OLD],
                        event_types="status", channels=("sms", "whatsapp"))
    assert endpoint.tokens == ("tok-secret-1", "tok-secret-2") and endpoint.event_types == frozenset({"status"})
    assert "tok-secret" not in repr(endpoint) and SECRET_OLD not in repr(endpoint)


def test_an_endpoint_variable_for_no_endpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"SUPRHOOK_ENDPOINT_STAUS_TOKENS: no endpoint has that name "
                                          r"\(declared: status, replies\)"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENDPOINTS=SPEC, SUPRHOOK_ENDPOINT_STAUS_TOKENS="x"))


# --------------------------------------------------------------------------------------------------
# Over HTTP: accepted where it belongs, 422 where it does not, per-endpoint tokens


def test_env_endpoints_accept_their_types_and_refuse_others_with_422(env_server, caplog):
    server = env_server
    caplog.set_level(logging.INFO, "suprhook.receiver")
    status = server.post(make_status(), token=STATUS_TOKEN, path=STATUS_PATH)
    assert status.status_code == 202 and status.json()["status"] == "accepted", status.text
    assert server.depth() >= 2  # on_status, catch_all (and whatever else this process registered)
    assert server.logged(status.json()["event_id"])
    reply = server.post(make_inbound("yes"), token=REPLIES_TOKEN, path=REPLIES_PATH)
    assert reply.status_code == 202, reply.text
    depth = server.depth()
    before = wrong_endpoint_count(server.url)

    misrouted = make_inbound("no")  # SuprSend's inbound_message webhook pointed at the status URL
    r = server.post(misrouted, token=STATUS_TOKEN, path=STATUS_PATH)
    assert r.status_code == 422, r.text
    assert r.json() == {"status": "rejected", "errors": {"event_type": [
        f"endpoint 'status' ({STATUS_PATH}) accepts event_type status, not inbound_message: SuprSend's whatsapp "
        f"inbound_message webhook points at the wrong URL; point it at {REPLIES_PATH} (endpoint 'replies', "
        "which accepts event_type=inbound_message channel=sms|whatsapp)"]}}
    event_id = load_event(misrouted).event_id
    assert server.depth() == depth and server.logged(event_id) == []  # nothing enqueued, nothing logged
    assert wrong_endpoint_count(server.url) == before + 1

    email = make_inbound("hi", channel="email")  # the channel is wrong for 'replies'; only the default takes it
    r = server.post(email, token=REPLIES_TOKEN, path=REPLIES_PATH)
    assert r.status_code == 422 and list(r.json()["errors"]) == ["channel"], r.text
    assert r.json()["errors"]["channel"][0] == (
        f"endpoint 'replies' ({REPLIES_PATH}) accepts channel sms|whatsapp, not email: SuprSend's email "
        "inbound_message webhook points at the wrong URL; point it at /webhooks/suprsend (the default endpoint, "
        "which accepts every event)")
    both = server.post(make_status(channel="email"), token=REPLIES_TOKEN, path=REPLIES_PATH)
    assert both.status_code == 422 and set(both.json()["errors"]) == {"event_type", "channel"}
    assert server.depth() == depth and wrong_endpoint_count(server.url) == before + 3

    # Nothing was remembered: pointed at the right URL, the same event is accepted, not a duplicate.
    fixed = server.post(misrouted, token=REPLIES_TOKEN, path=REPLIES_PATH)
    assert fixed.status_code == 202 and fixed.json() == {"status": "accepted", "event_id": event_id}
    assert server.post(email, token=GLOBAL).status_code == 202  # the default endpoint takes everything

    lines = [getattr(rec, FIELDS_ATTR) for rec in caplog.records if getattr(rec, FIELDS_ATTR, {}).get("reason")
             == "wrong_endpoint"]
    assert len(lines) == 3 and lines[0]["event_id"] == event_id and lines[0]["code"] == 422
    assert lines[0]["endpoint"] == "status" and lines[0]["detail"] == "status accepts event_type=status"
    assert STATUS_TOKEN not in caplog.text and REPLIES_TOKEN not in caplog.text


def test_each_endpoint_takes_only_its_own_tokens(env_server):
    server = env_server
    depth = server.depth()
    for token, path in ((STATUS_TOKEN, REPLIES_PATH), (REPLIES_TOKEN, STATUS_PATH), (GLOBAL, STATUS_PATH),
                        (STATUS_TOKEN, "/webhooks/suprsend")):
        r = server.post(make_status() if path != REPLIES_PATH else make_inbound(), token=token, path=path)
        assert r.status_code == 401, (token, path, r.text)
        assert r.json() == {"status": "rejected", "errors": {"Authorization": ["invalid token"]}}
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert server.post(make_status(), path=STATUS_PATH).status_code == 401  # no token at all
    assert server.depth() == depth
    assert server.post(make_status(), token=GLOBAL).status_code == 202
    r = server.session.get(server.url + STATUS_PATH, timeout=10)
    assert r.status_code == 405 and r.json()["status"] == "rejected" and "POST" in r.headers["Allow"]


def test_endpoints_without_their_own_tokens_use_the_global_ones(tmp_path):
    server = start(tmp_path, SUPRHOOK_AUTH_TOKENS=GLOBAL, SUPRHOOK_ENDPOINTS=SPEC,
                   SUPRHOOK_ENDPOINT_STATUS_TOKENS=STATUS_TOKEN)
    try:
        assert server.post(make_inbound(), token=GLOBAL, path=REPLIES_PATH).status_code == 202
        assert server.post(make_status(), token=GLOBAL, path=STATUS_PATH).status_code == 401
        assert server.post(make_status(), token=STATUS_TOKEN, path=STATUS_PATH).status_code == 202
        assert [r.auth() for r in server.state.routes.values()] == [
            "1 token(s) (SUPRHOOK_AUTH_TOKENS)", "1 token(s) (SUPRHOOK_ENDPOINT_STATUS_TOKENS)",
            "1 token(s) (SUPRHOOK_AUTH_TOKENS)"]
        assert GLOBAL not in repr(server.state) and STATUS_TOKEN not in repr(server.state)
    finally:
        server.stop()


def test_code_declared_endpoint_runs_handlers_in_a_real_worker(tmp_path):
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers",
                          SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"))
    replies = Endpoint("replies", "/hooks/replies", tokens=("tok-code-replies-1",), event_types={"inbound_message"},
                       channels={"whatsapp"})
    server = start(tmp_path, [replies], **config)
    worker = Worker(config, tmp_path / "probe")
    try:
        r = server.post(make_inbound("YES"), token="tok-code-replies-1", path="/hooks/replies")
        assert r.status_code == 202, r.text
        runs = worker.wait_runs(r.json()["event_id"], 3)
        assert sorted(run["handler"] for run in runs) == ["catch_all", "on_reply", "on_yes_no"]
        status = make_status()
        wrong = server.post(status, token="tok-code-replies-1", path="/hooks/replies")
        assert wrong.status_code == 422 and "point it at /webhooks/suprsend (the default endpoint" in wrong.text
        event_id = load_event(status).event_id
        assert server.logged(event_id) == [] and worker.runs(event_id) == []
        assert server.depth() == 0  # the worker took the reply's tasks, and nothing else was sent
    finally:
        worker.stop()
        server.stop()


def test_signature_only_endpoint_with_its_own_secret(tmp_path):
    server = start(tmp_path, SUPRHOOK_ENV="production", SUPRHOOK_AUTH_TOKENS=GLOBAL, SUPRHOOK_METRICS="off",
                   SUPRHOOK_ENDPOINTS="signed:/hooks/signed:event_type=status",
                   SUPRHOOK_ENDPOINT_SIGNED_SIGNING_SECRET=SECRET_OLD)
    try:
        body = body_of()
        r = server.post(data=body, token=GLOBAL, path="/hooks/signed")  # its own secret; the global token
        assert r.status_code == 401 and "webhook-signature" in r.json()["errors"], r.text
        assert server.post(data=body, token=GLOBAL, headers=sign(body, SECRET_OLD), path="/hooks/signed"
                           ).status_code == 202
        assert server.state.routes["suprhook_endpoints.signed"].auth() == (
            "1 token(s) (SUPRHOOK_AUTH_TOKENS) + signature (SUPRHOOK_ENDPOINT_SIGNED_SIGNING_SECRET)")
    finally:
        server.stop()
    with pytest.raises(ConfigError, match=r"^SUPRHOOK_ENDPOINT_SIGNED_SIGNING_SECRET: secret #1 is not") as info:
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENDPOINTS="signed:/hooks/signed",
                                SUPRHOOK_ENDPOINT_SIGNED_SIGNING_SECRET="whsec_%%%-not-a-secret"))
    assert "not-a-secret" not in str(info.value)


def test_production_refuses_an_endpoint_without_auth(tmp_path):
    open_endpoint = Endpoint("open", "/hooks/open", tokens=(), signing_secrets=())
    with pytest.raises(ConfigError) as info:
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENV="production", SUPRHOOK_AUTH_TOKENS=GLOBAL),
                   endpoints=[open_endpoint])
    assert str(info.value).startswith("refusing to start in production: endpoint 'open' (/hooks/open) has no "
                                      "authentication; set SUPRHOOK_ENDPOINT_OPEN_TOKENS")
    with pytest.raises(ConfigError, match="SUPRHOOK_AUTH_TOKENS"):  # no global auth: the default endpoint is open
        create_app(stack_config(tmp_path, None, SUPRHOOK_ENV="production", SUPRHOOK_ENDPOINTS=SPEC,
                                SUPRHOOK_ENDPOINT_STATUS_TOKENS=STATUS_TOKEN))
    allowed = create_app(stack_config(tmp_path, None, SUPRHOOK_ENV="production", SUPRHOOK_AUTH_TOKENS=GLOBAL,
                                      SUPRHOOK_ALLOW_UNAUTHENTICATED="1", SUPRHOOK_METRICS="off"),
                         endpoints=[open_endpoint])
    client = allowed.test_client()
    assert client.post("/hooks/open", json=make_status()).status_code == 202
    assert client.post("/webhooks/suprsend", json=make_status()).status_code == 401  # the default keeps its token


def test_mounted_under_a_prefix(tmp_path):
    app = Flask("host")
    init_app(app, stack_config(tmp_path, None, SUPRHOOK_ENDPOINTS=SPEC), url_prefix="/hooks",
             endpoints=[Endpoint("sms", "/sms", channels="sms")])
    client = app.test_client()
    assert client.post(f"/hooks{STATUS_PATH}", json=make_status()).status_code == 202
    r = client.post(f"/hooks{STATUS_PATH}", json=make_inbound())
    assert r.status_code == 422
    assert r.get_json()["errors"]["event_type"][0].startswith(f"endpoint 'status' (/hooks{STATUS_PATH}) accepts")
    assert f"point it at /hooks{REPLIES_PATH} (endpoint 'replies'" in r.get_json()["errors"]["event_type"][0]
    assert client.post("/hooks/sms", json=make_status(channel="sms")).status_code == 202
    assert client.get("/hooks/sms").status_code == client.get("/hooks/webhooks/suprsend").status_code == 405


# --------------------------------------------------------------------------------------------------
# OpenAPI and `suprhook routes`


def test_openapi_documents_each_endpoint_and_its_422(env_server):
    doc = requests.get(env_server.url + "/openapi.json", timeout=10).json()
    validate_openapi(doc)
    assert set(doc["paths"]) == {"/webhooks/suprsend", STATUS_PATH, REPLIES_PATH, "/healthz", "/readyz"}
    assert "422" not in doc["paths"]["/webhooks/suprsend"]["post"]["responses"]
    replies = doc["paths"][REPLIES_PATH]["post"]
    assert replies["x-suprhook-endpoint"] == {"name": "replies", "event_type": ["inbound_message"],
                                              "channel": ["sms", "whatsapp"]}
    assert "SUPRHOOK_ENDPOINT_REPLIES_TOKENS" in replies["description"]
    assert set(replies["requestBody"]["content"]["application/json"]["examples"]) == {"inbound_message"}
    r = env_server.post(make_inbound(), token=STATUS_TOKEN, path=STATUS_PATH)
    documented = doc["paths"][STATUS_PATH]["post"]["responses"][str(r.status_code)]
    schema = {**documented["content"]["application/json"]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(r.json())


def run_routes(env: dict[str, str], command: str = "routes") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_"))}
    return subprocess.run([sys.executable, "-m", "suprhook", command], cwd=REPO, capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(REPO), "SUPRHOOK_HANDLERS": "tests.probe_handlers", **env},
                          timeout=60)


def test_routes_lists_endpoints_before_handlers_without_secrets():
    run = run_routes({"SUPRHOOK_ENDPOINTS": SPEC, "SUPRHOOK_AUTH_TOKENS": GLOBAL,
                      "SUPRHOOK_ENDPOINT_STATUS_TOKENS": f"{STATUS_TOKEN},tok-status-rotated-2",
                      "SUPRHOOK_ENDPOINT_REPLIES_SIGNING_SECRET": SECRET_OLD})
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["ENDPOINT", "PATH", "ACCEPTS", "AUTH"]
    assert lines[1].split() == ["default", "/webhooks/suprsend", "(every", "event)", "1", "token(s)",
                                "(SUPRHOOK_AUTH_TOKENS)"]
    assert lines[2].split() == ["status", STATUS_PATH, "event_type=status", "2", "token(s)",
                                "(SUPRHOOK_ENDPOINT_STATUS_TOKENS)"]
    assert lines[3].split() == ["replies", REPLIES_PATH, "event_type=inbound_message", "channel=sms|whatsapp", "1",
                                "token(s)", "(SUPRHOOK_AUTH_TOKENS)", "+", "signature",
                                "(SUPRHOOK_ENDPOINT_REPLIES_SIGNING_SECRET)"]
    handlers_header = next(i for i, line in enumerate(lines) if line.startswith("HANDLER"))
    assert handlers_header > 3 and any(line.startswith("tests.probe_handlers.on_status ") for line in lines)
    for secret in (GLOBAL, STATUS_TOKEN, "tok-status-rotated-2", SECRET_OLD, SECRET_OLD.removeprefix("whsec_")):
        assert secret not in run.stdout + run.stderr

    bare = run_routes({"SUPRHOOK_ENDPOINTS": "open:/hooks/open"})
    assert bare.returncode == 0 and any(line.split() == ["open", "/hooks/open", "(every", "event)", "none"]
                                        for line in bare.stdout.splitlines()), bare.stdout
    bad = run_routes({"SUPRHOOK_ENDPOINTS": "status:/s:kind=status"})
    assert bad.returncode == 2 and bad.stderr.startswith("suprhook routes: SUPRHOOK_ENDPOINTS: entry #1"), bad.stderr


def test_check_config_checks_the_endpoints(tmp_path):
    env = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path), "SUPRHOOK_ENDPOINTS": SPEC}
    good = run_routes(env, "check-config")
    assert good.returncode == 0, good.stdout + good.stderr
    routes = f"default /webhooks/suprsend, status {STATUS_PATH}, replies {REPLIES_PATH}"
    assert f"\u2713 endpoints       {routes}" in good.stdout
    bad = run_routes({**env, "SUPRHOOK_ENDPOINTS": "status:/metrics"}, "check-config")
    assert bad.returncode == 1
    assert "\u2717 endpoints       endpoint 'status': path /metrics is taken by the Prometheus metrics" in bad.stdout
    assert bad.stdout.rstrip().endswith("problems: endpoints")
