"""Fuzzing the receiver with hypothesis: over 10,000 generated request bodies and headers.

Bodies: random bytes; arbitrary JSON documents (unicode, lone surrogates both as ``\\ud800`` escapes and
as raw bytes, numbers at the extremes, NaN/Infinity); the seed status and reply payloads (and every
vendor fixture as `vendor_response`) with fields deleted, added or given a value of another JSON type
at every depth; JSON text surgery (duplicate keys, NaN/Infinity/1e999/5,000-digit literals, nesting
just under, at and over the limit, strings around the body-size limit, truncation, byte flips); and
random Content-Type/charset and auth/signature/forwarding headers.

Every response must be: not a 5xx; JSON with a `status`; and, unless it is a 202, enqueue nothing
(the embedded broker's queue depth is unchanged). A 202 enqueues exactly one task (one handler matches
every event), none for an echo of our own outbound message. Most bodies go through Flask's test client
(the full WSGI app); a slice goes over real HTTP to `LiveServer`, including chunked bodies. Last, a
deterministic sweep puts each wrong JSON type into each field. `pytest -s` prints the histogram.
"""
from __future__ import annotations

import collections
import copy
import json
import math
import random
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suprhook.handlers import Registry
from suprhook.handlers.messages import is_echo
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.receiver import create_app
from suprhook.receiver.body import MAX_DEPTH, decode_json
from suprhook.schemas import load_event

from .conftest import REPO, SEED_INBOUND, SEED_STATUS, LiveServer, stack_config

MAX_BODY = 64 * 1024


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)


# Examples per test; they add up to TOTAL_CLIENT through the test client, plus LIVE_EXAMPLES over HTTP.
EXAMPLES = {"bytes": 1_500, "json": 1_500, "mutated": 4_000, "text": 2_000, "headers": 1_000}
LIVE_EXAMPLES = 600
TOTAL_CLIENT = sum(EXAMPLES.values())


def catch_all(event):
    """A module-level handler for every event: each accepted event puts exactly one task on the queue."""


# --------------------------------------------------------------------------------------------------
# Seeds


def _vendor_fixtures() -> list[tuple[str, str, Any]]:
    found = []
    for path in sorted((REPO / "tests" / "fixtures" / "vendors").glob("*/*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "payload" in data:
            found.append((path.parent.name, data.get("event_type", "status"), data["payload"]))
    return found


VENDOR_FIXTURES = _vendor_fixtures()
SEEDS = [SEED_STATUS, SEED_INBOUND]
SENTINEL = "\x00__FUZZ_LITERAL__\x00"
SENTINEL_JSON = json.dumps(SENTINEL)


# --------------------------------------------------------------------------------------------------
# Strategies

EXTREME_INTS = [0, -1, 1, 2**31 - 1, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30),
                253402300799999, 253402300800000, 1672310923000]
EXTREME_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                  -1.7976931348623157e308, 1e15 + 0.5, 253402300799999.9, 1672310923000.5]
# Number literals (as JSON text) that json.loads either rejects or turns into something unusual.
NUMBER_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E+400", "-0", "-0.0", "0e0",
                   "1" * 5000, "-" + "9" * 4400, "123456789012345678901234567890", "1.5e-400", "00", "01",
                   "1.", ".5", "+1", "0x10", "1e", "nan", "inf", "true", "null", '""']
LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
STRINGS = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.lists(st.one_of(st.characters(), LONE_SURROGATES), max_size=10).map("".join),
    st.sampled_from(["", " ", "status", "inbound_message", "whatsapp", "delivered", "\u202e", "\ufeff",
                     "\x00", "🤖" * 3, "\ud800", "\udfff", "\ud83e\udd16", "a\ud800b", "1672310923000", "{}",
                     '{"id": 1}', "[1]", "null"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(EXTREME_INTS),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EXTREME_FLOATS), STRINGS,
)
KEYS = st.one_of(STRINGS, st.sampled_from(["channel", "event_type", "status", "timestamp", "text", "body", "from",
                                           "reference", "suprsend_status", "vendor_response", "__proto__"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
# Values not even JSON can hold without tricks: dumped with allow_nan, they become NaN/Infinity literals.
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])

VALID_TYPE = "application/json"
CONTENT_TYPES = st.one_of(
    st.sampled_from([VALID_TYPE] * 6 + ["application/json; charset=utf-8", "application/json; charset=UTF-8",
                                        "application/json;charset=utf8", 'application/json; charset="utf-8"']),
    st.sampled_from(["application/json; charset=latin-1", "application/json; charset=utf-16",
                     "application/json; charset=ascii", "APPLICATION/JSON", "application/JSON; CHARSET=UTF-8",
                     "application/json; charset=", "application/json;;", "application/json; boundary=x",
                     "application/jsonx", "application/ld+json", "application/problem+json", "text/json",
                     "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/octet-stream", "*/*", "json", "", ";", "application/json\t", " application/json"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.none(),  # no Content-Type at all
)
VALID_TYPES = st.sampled_from([VALID_TYPE] * 4 + ["application/json; charset=utf-8", "application/json;charset=UTF8"])
MOSTLY_VALID_TYPES = st.sampled_from([VALID_TYPES] * 4 + [CONTENT_TYPES]).flatmap(lambda strategy: strategy)
# Random bytes around the size limit (drawing them byte by byte through hypothesis would be far too slow).
BIG_RANDOM_BYTES = st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 2**32),
                             st.integers(MAX_BODY - 10, MAX_BODY + 10))
HEADER_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["Authorization", "webhook-id", "webhook-timestamp", "webhook-signature", "X-Forwarded-For",
                     "X-Suprsend-Token", "Content-Encoding", "Content-MD5", "Accept", "X-Request-Id"]),
    st.one_of(HEADER_VALUES, st.sampled_from(["Bearer ", "Bearer x", "v1,AAAA", "v1,", "1700000000", "-1",
                                              "gzip", "1.2.3.4, 5.6.7.8", "::1", "[::1]:80"])),
    max_size=3,
)


def dump(value: Any, how: str) -> bytes:
    """JSON text of `value` as bytes, several ways: lone surrogates become escapes or raw (invalid) UTF-8."""
    if how == "ascii":
        return json.dumps(value).encode("ascii")
    if how == "raw":
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "compact":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "utf-16":
        return json.dumps(value, ensure_ascii=False).encode("utf-16", "surrogatepass")
    return json.dumps(value, ensure_ascii=False).encode("latin-1", "replace")


DUMPS = st.sampled_from(["ascii", "ascii", "raw", "compact", "utf-16", "latin-1"])


@st.composite
def seed_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A seed status or reply, unique (so mostly accepted), sometimes with a vendor fixture's callback."""
    payload = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    nid = draw(st.uuids()).hex
    payload["reference"]["supr_nid"] = nid
    payload["reference"]["idempotency_key"] = f"idem-{nid}"
    if "suprsend_inbound_message" in payload:
        payload["suprsend_inbound_message"]["timestamp"] = 1683898377000 + draw(st.integers(0, 10**9))
    if VENDOR_FIXTURES and draw(st.booleans()):
        vendor, event_type, callback = draw(st.sampled_from(VENDOR_FIXTURES))
        payload["vendor_name"] = draw(st.sampled_from([vendor, vendor.upper(), f" {vendor} ", "unknown-vendor"]))
        payload["vendor_response"] = {vendor: copy.deepcopy(callback)}
        if event_type != payload["event_type"] and draw(st.booleans()):
            payload = copy.deepcopy(draw(st.sampled_from(SEEDS)))
            payload.update(vendor_name=vendor, vendor_response={vendor: copy.deepcopy(callback)})
            payload["reference"] = {**payload["reference"], "supr_nid": nid}
    return payload


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON document, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(paths(item, prefix + (index,)))
    return found


def set_path(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def delete_path(doc: Any, path: tuple) -> Any:
    if not path:
        return doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return doc


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A seed payload with 0-4 edits: wrong-typed values, deletions, additions, anywhere in it."""
    payload = draw(seed_payloads())
    for _ in range(draw(st.integers(0, 4))):
        targets = paths(payload)
        path = draw(st.sampled_from(targets))
        op = draw(st.sampled_from(["retype", "retype", "delete", "add", "null", "wrap"]))
        if op == "retype":
            payload = set_path(payload, path, draw(JSON))
        elif op == "delete" and path:
            payload = delete_path(payload, path)
        elif op == "null":
            payload = set_path(payload, path, None)
        elif op == "wrap":
            payload = set_path(payload, path, draw(st.sampled_from([lambda v: [v], lambda v: {"body": v}, str]))(
                _get(payload, path)))
        elif op == "add":
            container = _get(payload, path)
            if isinstance(container, dict):
                container[draw(KEYS)] = draw(JSON)
            elif isinstance(container, list):
                container.append(draw(JSON))
    return payload


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"a":[' * (depth // 2) + "null" + "]}" * (depth // 2)


@st.composite
def text_surgery(draw: st.DrawFn) -> bytes:
    """JSON text that the json module would not produce from a dict: literals, duplicates, nesting, size."""
    payload = draw(st.one_of(seed_payloads(), mutated_payloads()))
    kind = draw(st.sampled_from(["literal", "duplicate", "nesting", "huge", "truncate", "bytes", "non_finite"]))
    if kind == "non_finite":  # NaN/Infinity literals straight from json.dumps(allow_nan=True)
        path = draw(st.sampled_from(paths(payload)))
        return json.dumps(set_path(payload, path, draw(NON_FINITE))).encode()
    if kind in ("literal", "nesting", "huge"):
        path = draw(st.sampled_from(paths(payload)))
        text = json.dumps(set_path(payload, path, SENTINEL))
        if kind == "literal":
            literal = draw(st.sampled_from(NUMBER_LITERALS))
        elif kind == "nesting":
            depth = draw(st.one_of(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 6), st.sampled_from([200, 1_000, 20_000])))
            literal = nested(depth, draw(st.sampled_from(["array", "object", "mixed"])))
        else:
            size = draw(st.one_of(st.integers(MAX_BODY - 1_500, MAX_BODY + 500), st.sampled_from([10_000, 200_000])))
            char = draw(st.sampled_from(["x", "é", "🤖", "\\u00e9", "\\ud800", "\\\\", '\\"']))
            literal = '"' + char * max(1, size // len(char.encode())) + '"'
        return text.replace(SENTINEL_JSON, literal, 1).encode("utf-8")
    text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
    body = text.encode("utf-8", "surrogatepass")
    if kind == "duplicate":
        objects = [i for i, ch in enumerate(text) if ch == "{"]
        at = draw(st.sampled_from(objects)) if objects else 0
        key = json.dumps(draw(st.sampled_from(["channel", "event_type", "status", "supr_nid", "text", "a"])))
        insert = f"{key}: {json.dumps(draw(SCALARS))}, {key}: {json.dumps(draw(SCALARS))}, "
        return (text[:at + 1] + insert + text[at + 1:]).encode("utf-8", "surrogatepass")
    if kind == "truncate":
        return body[:draw(st.integers(0, max(0, len(body) - 1)))]
    # byte-level damage: flip, insert or delete a few bytes
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 5))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def json_documents(draw: st.DrawFn) -> bytes:
    value = draw(st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=6),
                           st.builds(lambda ch, et, rest: {"channel": ch, "event_type": et, **rest},
                                     STRINGS, st.one_of(STRINGS, st.sampled_from(["status", "inbound_message"])),
                                     st.dictionaries(st.sampled_from(["suprsend_status", "suprsend_inbound_message",
                                                                      "reference", "vendor_response", "version",
                                                                      "distinct_id", "vendor_name"]), JSON,
                                                     max_size=4))))
    return dump(value, draw(DUMPS))


@st.composite
def any_body(draw: st.DrawFn) -> bytes:
    return draw(st.one_of(st.binary(max_size=300), BIG_RANDOM_BYTES, json_documents(),
                          mutated_payloads().flatmap(lambda p: DUMPS.map(lambda how: dump(p, how))),
                          text_surgery()))


def headers_with(content_type: str | None, extra: dict[str, str]) -> dict[str, str]:
    headers = dict(extra)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


# --------------------------------------------------------------------------------------------------
# The receiver under fuzz and the invariants


class Fuzzed:
    """Sends bodies, checks every response, counts status codes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()
        self.settings = app.extensions["suprhook"].settings
        self.broker_url = self.settings.broker_url
        self.enqueued = 0
        self.histogram: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.live: LiveServer | None = None

    def depth(self) -> int:
        return queue_depth(self.broker_url)

    def via_client(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        r = self.client.post("/webhooks/suprsend", data=body, headers=headers)
        return r.status_code, r.mimetype, r.get_data()

    def via_http(self, body: bytes, headers: dict[str, str], chunked: bool = False) -> tuple[int, str, bytes]:
        assert self.live is not None
        data: Any = iter([body[:len(body) // 2], body[len(body) // 2:]]) if chunked else body
        r = self.live.session.post(self.live.url + "/webhooks/suprsend", data=data, headers=headers, timeout=30)
        return r.status_code, r.headers.get("Content-Type", "").split(";")[0].strip(), r.content

    def check(self, label: str, body: bytes, headers: dict[str, str],
              send: Callable[[bytes, dict[str, str]], tuple[int, str, bytes]] | None = None) -> int:
        before = self.depth()
        code, mimetype, content = (send or self.via_client)(body, headers)
        added = self.depth() - before
        self.histogram[label][code] += 1
        where = f"{label}: {code} for headers={headers!r} body[:300]={body[:300]!r} ({len(body)} bytes)"
        assert code < 500, f"server error {where}: {content[:500]!r}"
        assert mimetype == "application/json", f"not JSON: {where}: {content[:300]!r}"
        reply = json.loads(content)
        assert isinstance(reply, dict) and isinstance(reply.get("status"), str), f"no status: {where}: {reply!r}"
        if code == 202:
            assert reply["status"] == "accepted", f"{where}: {reply!r}"
            # one task (the catch-all handler), or none for an echo of our own outbound message
            expected = 0 if is_echo(load_event(decode_json(body)), self.settings.own_numbers) else 1
            assert added == expected, f"{where}: {reply!r}, enqueued {added}, expected {expected}"
            self.enqueued += added
        else:
            assert added == 0, f"{added} messages enqueued for {where}: {reply!r}"
        if code == 200:
            assert reply["status"] == "duplicate", f"{where}: {reply!r}"
        if 400 <= code < 500 and code not in (409, 429):
            assert reply["status"] == "rejected" and reply.get("errors"), f"{where}: {reply!r}"
        return code


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    registry = Registry()
    registry()(catch_all)
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    # no rate or refusal limit: every body is judged on its own (a 413 must stay a 413 whatever came before;
    # tests/test_security.py covers the 429 a source earns by being refused too often)
    app = create_app(stack_config(data_dir, None, SUPRHOOK_RATE_LIMIT="0", SUPRHOOK_REFUSAL_LIMIT="0",
                                  SUPRHOOK_MAX_BODY_BYTES=str(MAX_BODY)),
                     registry=registry)
    target = Fuzzed(app)
    yield target
    if target.live is not None:
        target.live.stop()
    total: collections.Counter[int] = collections.Counter()
    lines = []
    for label, counts in target.histogram.items():
        total.update(counts)
        lines.append(f"  {label:<16} {sum(counts.values()):>6} bodies  "
                     + "  ".join(f"{code}: {n}" for code, n in sorted(counts.items())))
    live = sum(target.histogram["live-http"].values())
    print(f"\nfuzz: {sum(total.values())} bodies ({sum(total.values()) - live} via the test client, {live} over "
          f"HTTP); status codes: " + ", ".join(f"{code}: {n}" for code, n in sorted(total.items()))
          + f"; 5xx: {sum(n for code, n in total.items() if code >= 500)}; messages enqueued: {target.depth()}, "
          f"all by 202s\n" + "\n".join(lines))
    assert target.depth() == target.enqueued
    if all(label in target.histogram for label in [*EXAMPLES, "live-http"]):  # the whole file ran
        assert sum(total.values()) - live - sum(target.histogram["sweep"].values()) >= TOTAL_CLIENT
        assert live >= LIVE_EXAMPLES


@fuzz(EXAMPLES["bytes"])
@given(body=st.one_of(st.binary(max_size=400), BIG_RANDOM_BYTES), content_type=MOSTLY_VALID_TYPES)
def test_random_bytes(fuzzed, body, content_type):
    fuzzed.check("bytes", body, headers_with(content_type, {}))


@fuzz(EXAMPLES["json"])
@given(body=json_documents(), content_type=MOSTLY_VALID_TYPES)
def test_arbitrary_json(fuzzed, body, content_type):
    fuzzed.check("json", body, headers_with(content_type, {}))


@fuzz(EXAMPLES["mutated"])
@given(payload=mutated_payloads(), how=DUMPS)
def test_mutated_payloads(fuzzed, payload, how):
    fuzzed.check("mutated", dump(payload, how), {"Content-Type": VALID_TYPE})


@fuzz(EXAMPLES["text"])
@given(body=text_surgery())
def test_json_text_surgery(fuzzed, body):
    code = fuzzed.check("text", body, {"Content-Type": VALID_TYPE})
    if len(body) > MAX_BODY:
        assert code == 413


@fuzz(EXAMPLES["headers"])
@given(payload=seed_payloads(), content_type=CONTENT_TYPES, extra=EXTRA_HEADERS)
def test_headers(fuzzed, payload, content_type, extra):
    code = fuzzed.check("headers", json.dumps(payload).encode(), headers_with(content_type, extra))
    if content_type is None or content_type.split(";")[0].strip().lower() != VALID_TYPE:
        assert code == 415


@fuzz(LIVE_EXAMPLES)
@given(body=any_body(), content_type=MOSTLY_VALID_TYPES, extra=EXTRA_HEADERS, chunked=st.booleans())
def test_over_real_http(fuzzed, body, content_type, extra, chunked):
    if fuzzed.live is None:
        fuzzed.live = LiveServer(fuzzed.app)
    headers = headers_with(content_type, extra)
    try:
        requests.Request("POST", "http://127.0.0.1/", headers=headers).prepare()
    except ValueError:  # a header value requests itself refuses to send (e.g. leading whitespace)
        headers.pop("Content-Type", None)
    fuzzed.check("live-http", body, headers, lambda b, h: fuzzed.via_http(b, h, chunked))


WRONG_TYPES = [None, True, False, 0, -1, 2**63, 1.5, 1.7976931348623157e308, "", "x", "\ud800", [], [1], {}, {"a": 1}]


def fresh(payload: Any, n: int, changed: tuple = ()) -> Any:
    """A new event each time (another notification id, another reply timestamp), unless that is the field
    under test."""
    if not isinstance(payload, dict):
        return payload
    if isinstance(payload.get("reference"), dict) and changed[:1] != ("reference",):
        payload["reference"]["supr_nid"] = f"sweep-{n}"
    message = payload.get("suprsend_inbound_message")
    if isinstance(message, dict) and changed[:1] != ("suprsend_inbound_message",):
        message["timestamp"] = 1683898377000 + n
    return payload


def test_every_field_with_every_wrong_type(fuzzed):
    """Not random: each field of both seeds with each value in WRONG_TYPES, and each field of every
    vendor fixture (as `vendor_response`) with one of them, in turn."""
    sent = 0
    for seed in SEEDS:
        for path in paths(seed):
            for value in WRONG_TYPES:
                payload = fresh(set_path(copy.deepcopy(seed), path, value), sent, path)
                fuzzed.check("sweep", json.dumps(payload).encode(), {"Content-Type": VALID_TYPE})
                sent += 1
    for vendor, event_type, callback in VENDOR_FIXTURES:
        seed = SEED_STATUS if event_type == "status" else SEED_INBOUND
        for path in paths(callback):
            value = WRONG_TYPES[sent % len(WRONG_TYPES)]
            payload = fresh(copy.deepcopy(seed), sent)
            payload.update(vendor_name=vendor, vendor_response={vendor: set_path(copy.deepcopy(callback), path, value)})
            fuzzed.check("sweep", json.dumps(payload).encode(), {"Content-Type": VALID_TYPE})
            sent += 1
    assert sent > 2_000
