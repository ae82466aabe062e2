"""`suprsend_status`: SuprSend's normalized delivery status (sent, delivered, seen, ...)."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from .fields import MillisTimestamp, stored_text

# The statuses SuprSend documents; any other non-empty string still loads (SuprSend adds values).
KNOWN_STATUSES = ("triggered", "sent", "delivered", "seen", "read", "clicked", "failed", "dismissed")


class StatusSchema(Schema):
    class Meta:
        unknown = INCLUDE

    status = fields.String(required=True, validate=[validate.Length(min=1), stored_text(64)])
    timestamp = MillisTimestamp(allow_none=True, load_default=None)
