"""`reference`: ids that tie a webhook to the SuprSend notification it is about."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, post_load

from .fields import stored_text
from .model import Reference


class ReferenceSchema(Schema):
    class Meta:
        unknown = INCLUDE

    idempotency_key = fields.String(allow_none=True)
    supr_execution_id = fields.String(allow_none=True)
    supr_ngid = fields.String(allow_none=True)
    supr_nid = fields.String(allow_none=True, validate=stored_text(128))
    vendor_ack_id = fields.String(allow_none=True)
    workspace_name = fields.String(allow_none=True)
    workspace_uid = fields.String(allow_none=True)

    @post_load
    def make(self, data: dict, **kwargs) -> Reference:
        known = {k: data.pop(k, None) for k in Reference.FIELDS}
        return Reference(**known, extra=data)
