"""The OpenAPI document: valid OpenAPI 3.1, served at /openapi.json, and true to the running receiver.

Schemathesis generates requests from the document (positive and negative bodies, headers) and checks
every response: no 5xx, a documented status code, a body matching that status code's schema. The
responses no generated request reaches (401, 403, 409, 413, 415, 429, 503, readyz 503) are produced
on purpose below and validated against the same document.
"""
from __future__ import annotations

import collections
import json
import socket
import time

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from suprhook.handlers import Registry
from suprhook.handlers.stores.dedup import open_dedup
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.receiver import create_app, init_app
from suprhook.receiver.openapi import OPENAPI_VERSION, openapi_document
from suprhook.schemas import load_event

from .conftest import make_inbound, make_status, stack_config

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MAX_EXAMPLES = 60  # per operation; with the coverage phase the whole run stays well under 60 s
STATS: collections.Counter[tuple[str, int]] = collections.Counter()


def noop_handler(event):
    """A module-level handler that matches every event, so accepted events really enqueue."""


def registry_with_noop() -> Registry:
    registry = Registry()
    registry()(noop_handler)
    return registry


def make_app(tmp_path, **extra: str):
    # Refusal limit off: schemathesis sends mostly invalid requests, which would otherwise turn into 429s
    # (the limit is tested on its own).
    return create_app(stack_config(tmp_path, None, SUPRHOOK_REFUSAL_LIMIT="0", **extra), registry=registry_with_noop())


# --------------------------------------------------------------------------------------------------
# The document itself


def test_document_is_valid_openapi():
    doc = openapi_document()
    assert doc["openapi"] == OPENAPI_VERSION
    validate_openapi(doc)
    assert set(doc["paths"]) == {"/webhooks/suprsend", "/healthz", "/readyz"}
    post = doc["paths"]["/webhooks/suprsend"]["post"]
    assert set(post["responses"]) == {"200", "202", "400", "401", "403", "405", "409", "413", "415", "429", "503"}
    assert set(doc["components"]["securitySchemes"]) == {"bearerToken", "standardWebhooks"}
    schemas = doc["components"]["schemas"]
    for name in ("Envelope", "Reference", "Status", "InboundMessage", "Button", "Interactive", "Media"):
        assert schemas[name]["additionalProperties"] is True, name  # unknown = INCLUDE
    assert schemas["Envelope"]["required"] == ["channel", "event_type"]
    for example in post["requestBody"]["content"]["application/json"]["examples"].values():
        load_event(example["value"])  # the documented examples are webhooks the receiver accepts


def test_request_schema_agrees_with_the_marshmallow_schemas():
    """The Envelope JSON Schema accepts the seed payloads and rejects what marshmallow rejects."""
    doc = openapi_document()
    envelope = {**doc["components"]["schemas"]["Envelope"], "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(envelope)

    def ok(payload) -> bool:
        return validator.is_valid(payload)

    assert ok(make_status()) and ok(make_inbound())
    for mutate in (lambda p: p.pop("channel"), lambda p: p.update(event_type=""),
                   lambda p: p.pop("suprsend_status"), lambda p: p.update(suprsend_status=None),
                   lambda p: p["suprsend_status"].pop("status"),
                   lambda p: p["suprsend_status"].update(timestamp="yesterday"),
                   lambda p: p["suprsend_status"].update(timestamp=-1),
                   lambda p: p["reference"].update(supr_nid=42), lambda p: p.update(distinct_id={"id": 1}),
                   lambda p: p.update(distinct_id=True), lambda p: p.update(vendor_response=[1]),
                   lambda p: p.update(version=True), lambda p: p.update(channel=7)):
        payload = make_status()
        mutate(payload)
        assert not ok(payload), payload
        with pytest.raises(Exception):  # noqa: B017 - marshmallow agrees: the receiver rejects it too
            load_event(payload)
    for mutate in (lambda p: p["suprsend_inbound_message"].update(text=12),
                   lambda p: p["suprsend_inbound_message"].update(text={"body": None}),
                   lambda p: p["suprsend_inbound_message"].update(button={"payload": ["x"]}),
                   lambda p: p["suprsend_inbound_message"].update(timestamp=True),
                   lambda p: p.pop("suprsend_inbound_message")):
        payload = make_inbound()
        mutate(payload)
        assert not ok(payload), payload
        with pytest.raises(Exception):  # noqa: B017
            load_event(payload)
    for mutate in (lambda p: p["suprsend_inbound_message"].update(text="plain sms"),
                   lambda p: p["suprsend_inbound_message"].update(timestamp="1683898377000"),
                   lambda p: p["suprsend_inbound_message"].update(context='{"id": "wamid.1"}'),
                   lambda p: p.update(distinct_id=42, version=2, extra_field={"kept": True})):
        payload = make_inbound()
        mutate(payload)
        assert ok(payload), payload
        load_event(payload)


def test_served_at_openapi_json(tmp_path):
    app = make_app(tmp_path)
    r = app.test_client().get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == json.loads(json.dumps(openapi_document()))


def test_served_under_a_prefix_names_it_as_the_server(tmp_path):
    from flask import Flask

    app = Flask("host")
    init_app(app, stack_config(tmp_path, None), url_prefix="/hooks")
    doc = app.test_client().get("/hooks/openapi.json").get_json()
    assert doc["servers"] == [{"url": "/hooks"}]
    validate_openapi(doc)


# --------------------------------------------------------------------------------------------------
# Schemathesis against the running app


@pytest.fixture(scope="module")
def st_app(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("schemathesis"))
    served = app.test_client().get("/openapi.json").get_json()
    assert served == json.loads(json.dumps(schema.raw_schema)), "the app serves the document schemathesis tests"
    yield app
    depth = queue_depth(app.extensions["suprhook"].settings.broker_url)
    lines = [f"  {op:<26} {code}: {n}" for (op, code), n in sorted(STATS.items())]
    print(f"\nschemathesis: {sum(STATS.values())} requests to {len({op for op, _ in STATS})} method/path pairs "
          f"(the 3 operations, and its probes of undocumented methods); checks: "
          f"{', '.join(c.__name__ for c in CHECKS)}; {depth} messages enqueued\n" + "\n".join(lines))
    accepted = sum(n for (op, code), n in STATS.items() if op.startswith("POST") and code == 202)
    assert 0 < depth <= accepted or not STATS, "accepted events enqueue, and nothing else does"


# The document is loaded here, at import, so pytest can parametrize one test per operation; the
# requests go to the module's app (`case.call(app=...)`), which serves the same document (asserted above).
# (`schemathesis.pytest.from_fixture` would load it from the app, but fails on pytest 9.2: it reads the
# removed private `Node._nodeid`.)
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis(case, st_app):
    response = case.call(app=st_app)
    STATS[(f"{case.method} {case.path}", response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


# --------------------------------------------------------------------------------------------------
# Responses no generated request reaches, checked against the document


def assert_documented(response, path: str, method: str = "post") -> None:
    doc = openapi_document()
    operation = doc["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} is not documented for {method.upper()} {path}"
    schema = {**documented["content"]["application/json"]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(response.get_json())
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, name
            jsonschema.Draft202012Validator(header["schema"]).validate(response.headers[name])


def test_documented_rejections(tmp_path):
    app = make_app(tmp_path, SUPRHOOK_AUTH_TOKENS="tok-1", SUPRHOOK_MAX_BODY_BYTES="2048",
                   SUPRHOOK_SIGNING_SECRET="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    client = app.test_client()
    auth = {"Authorization": "Bearer tok-1"}
    cases = [
        (client.post("/webhooks/suprsend", json=make_status()), 401),  # no token
        (client.post("/webhooks/suprsend", json=make_status(), headers=auth), 401),  # no signature
        (client.post("/webhooks/suprsend", json=make_status(pad="x" * 4000), headers=auth), 413),
        (client.post("/webhooks/suprsend", data="{}", content_type="text/plain", headers=auth), 415),
        (client.get("/webhooks/suprsend"), 405),
    ]
    for response, code in cases:
        assert response.status_code == code, response.get_data(as_text=True)
        assert_documented(response, "/webhooks/suprsend")
    assert cases[0][0].headers["WWW-Authenticate"] == "Bearer"


def test_documented_forbidden_and_rate_limited(tmp_path):
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_ALLOWED_IPS="10.0.0.0/8", SUPRHOOK_RATE_LIMIT="1",
                                  SUPRHOOK_RATE_LIMIT_BURST="1"), registry=registry_with_noop())
    client = app.test_client()
    forbidden = client.post("/webhooks/suprsend", json=make_status())
    assert forbidden.status_code == 403
    assert_documented(forbidden, "/webhooks/suprsend")
    near = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.post("/webhooks/suprsend", json=make_status(), environ_base=near).status_code == 202
    limited = client.post("/webhooks/suprsend", json=make_status(), environ_base=near)
    assert limited.status_code == 429
    assert_documented(limited, "/webhooks/suprsend")


def test_documented_in_progress_and_duplicate(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    payload = make_status()
    event_id = load_event(payload).event_id
    dedup = open_dedup(app.extensions["suprhook"].settings.dedup_url, 60)
    dedup.claim(event_id)  # another request holds the lease
    busy = client.post("/webhooks/suprsend", json=payload)
    assert busy.status_code == 409
    assert_documented(busy, "/webhooks/suprsend")
    dedup.release(event_id)
    accepted = client.post("/webhooks/suprsend", json=payload)
    duplicate = client.post("/webhooks/suprsend", json=payload)
    assert (accepted.status_code, duplicate.status_code) == (202, 200)
    assert_documented(accepted, "/webhooks/suprsend")
    assert_documented(duplicate, "/webhooks/suprsend")


def test_documented_broker_down(tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(stack_config(tmp_path, f"redis://127.0.0.1:{port}/0", SUPRHOOK_RATE_LIMIT="0"),
                     registry=registry_with_noop())
    client = app.test_client()
    started = time.monotonic()
    unavailable = client.post("/webhooks/suprsend", json=make_status())
    assert unavailable.status_code == 503, unavailable.get_data(as_text=True)
    assert_documented(unavailable, "/webhooks/suprsend")
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert_documented(not_ready, "/readyz", "get")
    assert time.monotonic() - started < 30
