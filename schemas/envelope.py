"""The webhook envelope: the fields every SuprSend webhook carries, whatever its type."""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .fields import Identifier, stored_text
from .inbound_message import InboundMessageSchema
from .model import INBOUND_MESSAGE, STATUS, Reference
from .reference import ReferenceSchema
from .status import StatusSchema

_non_empty = validate.Length(min=1)


class EnvelopeSchema(Schema):
    """Loads a webhook into a dict of typed parts; unknown fields are kept (SuprSend adds fields)."""

    class Meta:
        unknown = INCLUDE

    channel = fields.String(required=True, validate=[_non_empty, stored_text(64)])
    event_type = fields.String(required=True, validate=[_non_empty, stored_text(64)])
    channel_value = fields.String(allow_none=True)
    distinct_id = Identifier(allow_none=True, validate=stored_text(255))
    reference = fields.Nested(ReferenceSchema, allow_none=True)
    suprsend_status = fields.Nested(StatusSchema, allow_none=True)
    suprsend_inbound_message = fields.Nested(InboundMessageSchema, allow_none=True)
    template = fields.String(allow_none=True)
    workflow_name = fields.String(allow_none=True)
    vendor_name = fields.String(allow_none=True)
    vendor_response = fields.Dict(allow_none=True)
    version = fields.Raw(allow_none=True, validate=lambda v: _is_version(v) or _bad_version())

    @validates_schema(pass_original=True)
    def _part_for_type(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        required = {STATUS: "suprsend_status", INBOUND_MESSAGE: "suprsend_inbound_message"}
        part = required.get(data.get("event_type"))
        if part and data.get(part) is None:
            raise ValidationError(f"Required when event_type is '{data['event_type']}'.", part)


def _is_version(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _bad_version() -> bool:
    raise ValidationError("Not a valid version: expected a string or a number.")


def reference_or_empty(value: Reference | None) -> Reference:
    return value if value is not None else Reference()
