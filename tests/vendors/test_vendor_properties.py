"""Property tests: no vendor dict, random or a damaged real one, makes normalization raise or lose `raw`."""
from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suprhook.schemas import MessageType, NormalizedStatus, load_event
from suprhook.schemas.vendors import MODULES, STATUS_MAPS, VENDORS, normalize_vendor

from .conftest import FIXTURES, webhook

VENDOR_NAMES = sorted(VENDORS) + ["some_new_vendor", ""]
CASES = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/*.json"))]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)
keyish = st.sampled_from(["status", "type", "payload", "response", "results", "entry", "messages", "statuses",
                          "id", "messageId", "timestamp", "from", "to", "text", "error", "errorCode", "button",
                          "interactive", "image", "context", "sender", "message", "event"])
vendorish = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(keyish, inner, max_size=6), max_leaves=30)


def check(vendor_name: str, raw: Any, event_type: str) -> None:
    result = normalize_vendor(vendor_name, {vendor_name: raw}, event_type)
    assert result.vendor.raw == (raw if raw is not None else {})
    assert isinstance(result.vendor.normalized_status, NormalizedStatus)
    if result.message is not None and result.message.type is not None:
        assert isinstance(result.message.type, MessageType)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VENDOR_NAMES), json_values | vendorish, st.sampled_from(["status", "inbound_message", "x"]))
def test_random_vendor_dicts_never_raise_and_keep_raw(vendor_name, raw, event_type):
    check(vendor_name, raw, event_type)


def _damage(value: Any, path: list[int], replacement: Any) -> Any:
    """Drop or replace one nested value chosen by `path` (indices into keys/items)."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    if len(path) == 1 and isinstance(value, dict) and replacement is None:
        del value[key]
        return value
    value[key] = _damage(value[key], path[1:], replacement)
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(CASES))), st.lists(st.integers(0, 50), min_size=1, max_size=5), scalars | vendorish)
def test_truncated_real_payloads_never_raise_and_load(index, path, replacement):
    case = CASES[index]
    vendor_dir = next(p.parent.name for p in sorted(FIXTURES.glob("*/*.json"))
                      if json.loads(p.read_text()) == case)
    damaged = _damage(copy.deepcopy(case["payload"]), path, replacement)
    for name in [vendor_dir, *[n for n in VENDORS if n.startswith(vendor_dir)][:1]]:
        check(name, damaged, case["event_type"])
        # and the whole event still loads (never a 500 at the receiver because of a vendor dict)
        event = load_event(webhook(name, damaged, case["event_type"]))
        assert event.vendor.raw == (damaged if damaged is not None else {})


@pytest.mark.parametrize("inner", [{"text": 12345}, {"text": {"a": 1}}, {"text": "ok", "postbackText": {"a": 1}}])
def test_vendor_values_of_the_wrong_type_become_text(inner):
    """Found in review: a number or object from a vendor reached the filters and made a 500."""
    from suprhook.handlers import Registry

    payload = {"app": "DemoApp", "timestamp": 1580227766370, "version": 2, "type": "message",
               "payload": {"id": "ABC", "source": "918x98xx21x4", "type": "quick_reply", "payload": inner}}
    event = load_event(webhook("gupshup", payload, "inbound_message"))
    message = event.message
    for value in (message.text, message.button_payload, message.button_text):
        assert value is None or isinstance(value, str)
    on = Registry()
    on(button="x", text="y", name="t")(lambda event: None)
    on.match(event)  # must not raise


# -- every vendor module: a shape it does not recognise is drift, never a silent or wrong result --------

MODULE_NAMES = sorted({importlib.import_module(f"suprhook.schemas.vendors.{m}").NAMES[0] for m in MODULES})
UNRECOGNISED = [{}, {"foo": "bar"}, {"unexpected": {"nested": [1, 2]}}, {"id": "x"}, {"type": "x"},
                {"status": "teleported", "id": "x"}, {"message": {}}, {"data": {}}, {"payload": {}},
                {"event": "x", "payload": {}}, [], [{}], "text", 5]


@pytest.mark.parametrize("event_type", ["status", "inbound_message"])
@pytest.mark.parametrize("vendor_name", MODULE_NAMES)
def test_unrecognised_shapes_drift_with_status_unknown(vendor_name, event_type):
    """Found in review (Gupshup): a dict of no documented shape came out as a reply with no drift."""
    for raw in UNRECOGNISED:
        result = normalize_vendor(vendor_name, {vendor_name: raw}, event_type)
        assert result.vendor.drift, (vendor_name, event_type, raw, result.vendor)
        assert result.vendor.normalized_status is NormalizedStatus.UNKNOWN, (vendor_name, raw)
        assert result.vendor.raw == raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODULE_NAMES), json_values | vendorish, st.sampled_from(["status", "inbound_message"]))
def test_an_unknown_result_is_always_drift(vendor_name, raw, event_type):
    """Whatever the dict: `unknown` comes with the reason (drift), unless the vendor's own word means unknown.
    (`{vendor: null}` is "no vendor callback", not a shape: generic, no drift.)"""
    assume(raw is not None)
    result = normalize_vendor(vendor_name, {vendor_name: raw}, event_type)
    if result.vendor.normalized_status is NormalizedStatus.UNKNOWN and result.vendor.drift is None:
        table = STATUS_MAPS[vendor_name]
        assert any(k.lower() == str(result.vendor.status).lower() and v is NormalizedStatus.UNKNOWN
                   for k, v in table.items()), (vendor_name, raw, result.vendor)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_names_its_source_and_only_drift_cases_drift(path):
    case = json.loads(path.read_text())
    assert case.get("_source"), f"{path} must name its source"
    result = normalize_vendor(path.parent.name, {path.parent.name: case["payload"]}, case["event_type"])
    expect_drift = "must drift" in case["_source"]
    assert bool(result.vendor.drift) is expect_drift, (path.name, result.vendor.drift)
