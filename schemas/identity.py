"""A stable id per webhook event, derived from the payload alone.

`reference.idempotency_key` is shared by every status of one notification, so the id also takes the
status and its timestamp; an inbound message is identified by who sent what, when, and the vendor's callback for it.
A redelivery of the same webhook gets the same id, which is what deduplication keys on.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .model import INBOUND_MESSAGE, STATUS


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def derive_event_id(payload: dict[str, Any]) -> str:
    event_type = payload.get("event_type")
    ref = payload.get("reference") if isinstance(payload.get("reference"), dict) else {}
    notification = ref.get("supr_nid") or ref.get("idempotency_key") or ref.get("vendor_ack_id")
    if event_type == STATUS and notification:
        status = payload.get("suprsend_status") or {}
        parts = [STATUS, ref.get("workspace_uid"), payload.get("channel"), notification,
                 status.get("status"), status.get("timestamp")]
    elif event_type == INBOUND_MESSAGE:
        # the vendor's callback carries the vendor's id of this message: two identical "yes" replies
        # differ there even when SuprSend's own part does not
        parts = [INBOUND_MESSAGE, ref.get("workspace_uid"), payload.get("channel"),
                 payload.get("channel_value"), payload.get("suprsend_inbound_message"),
                 payload.get("vendor_response")]
    else:  # unknown type, or a status without any notification id: the whole payload is the identity
        parts = ["payload", payload]
    digest = hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()
    return f"evt_{digest[:32]}"
