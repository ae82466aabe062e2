"""Vendor tests: a fixture's vendor dict, wrapped in a SuprSend webhook, goes through the receiver and
the broker, and is loaded back exactly as the worker loads it. Helpers assert every normalized field.

Fixture files: tests/fixtures/vendors/<vendor>/<case>.json, each
    {"_source": "<where this shape is documented>", "event_type": "status"|"inbound_message",
     "payload": {...the vendor's own callback...}}
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from suprhook.handlers import Registry
from suprhook.handlers.messages import message_event
from suprhook.receiver import create_app
from suprhook.schemas import Event, InboundMessage, VendorInfo, load_event

from ..conftest import stack_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vendors"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def fixture(vendor: str, case: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / vendor / f"{case}.json").read_text())
    assert data.get("_source"), f"{vendor}/{case}.json must name its source in _source"
    return data


def webhook(vendor_name: str, vendor_payload: Any, event_type: str, **envelope: Any) -> dict[str, Any]:
    """A SuprSend webhook carrying `vendor_payload`; SuprSend's own inbound part kept minimal, so the
    message fields a test asserts come from the vendor's dict."""
    nid = uuid.uuid4().hex[:26].upper()
    payload: dict[str, Any] = {
        "channel": "whatsapp", "channel_value": "+15555555555", "distinct_id": "user-1",
        "event_type": event_type, "version": "1.0", "workflow_name": "Vendor Test", "template": "vendor-test",
        "reference": {"supr_nid": nid, "idempotency_key": f"idem-{nid}", "workspace_uid": "wsuid"},
        "vendor_name": vendor_name, "vendor_response": {vendor_name: vendor_payload},
    }
    if event_type == "status":
        payload["suprsend_status"] = {"status": "delivered", "timestamp": 1700000000000}
    elif event_type == "inbound_message":
        payload["suprsend_inbound_message"] = {"source_message_id": f"wsuid-{nid}"}
    payload.update(envelope)
    return payload


def _noop(event):
    return None


@pytest.fixture(scope="session")
def receive(tmp_path_factory) -> Callable[..., Event]:
    registry = Registry()
    registry(name="vendor_tests_catch_all")(_noop)
    config = stack_config(tmp_path_factory.mktemp("vendors"), None)
    app = create_app(config, registry=registry)
    client = app.test_client()
    celery = app.extensions["suprhook"].dispatcher.celery
    queue_name = config["SUPRHOOK_QUEUE"]

    def receive(vendor_name: str, case: dict[str, Any], **envelope: Any) -> Event:
        body = webhook(vendor_name, case["payload"], case["event_type"], **envelope)
        response = client.post("/webhooks/suprsend", json=body)
        assert response.status_code == 202, response.json
        with celery.connection_for_read() as conn:
            queue = conn.SimpleQueue(queue_name, no_ack=True)
            message = queue.get(timeout=5)
            args, _kwargs, _embed = message.decode()
            queue.close()
        envelope_msg = args[0]
        assert envelope_msg["event_id"] == response.json["event_id"]
        event = message_event(envelope_msg)  # as the worker does: rebuilt from the message's wire form
        assert "event" in envelope_msg and event == load_event(envelope_msg["payload"], event_id=event.event_id)
        return event

    return receive


_VENDOR_FIELDS = [f.name for f in dataclasses.fields(VendorInfo) if f.name not in ("raw", "drift")]
_MESSAGE_FIELDS = ["type", "text", "button_payload", "button_text", "media", "location", "reply_to",
                   "from_", "to", "timestamp"]


def assert_vendor(vendor: VendorInfo, raw: Any, **expected: Any) -> None:
    """Every normalized vendor field must be stated by the test; `raw` must be the untouched dict."""
    missing = set(_VENDOR_FIELDS) - set(expected)
    assert not missing, f"state every field; missing: {sorted(missing)}"
    actual = {name: getattr(vendor, name) for name in _VENDOR_FIELDS}
    assert actual == expected
    assert vendor.raw == raw
    assert vendor.drift is None, vendor.drift


def assert_message(message: InboundMessage, **expected: Any) -> None:
    missing = set(_MESSAGE_FIELDS) - set(expected)
    assert not missing, f"state every field; missing: {sorted(missing)}"
    actual = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
    assert actual == expected
