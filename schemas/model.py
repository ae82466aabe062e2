"""The normalized event a handler receives. Plain frozen dataclasses: cheap, typed, picklable-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

STATUS = "status"
INBOUND_MESSAGE = "inbound_message"
KNOWN_EVENT_TYPES = (STATUS, INBOUND_MESSAGE)
KNOWN_CHANNELS = ("whatsapp", "sms", "email", "androidpush", "iospush", "webpush", "slack", "ms_teams", "inbox")
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True, slots=True)
class Reference:
    """Ids of the notification a webhook is about; unknown keys land in `extra`."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "idempotency_key", "supr_execution_id", "supr_ngid", "supr_nid",
        "vendor_ack_id", "workspace_name", "workspace_uid",
    )
    idempotency_key: str | None = None
    supr_execution_id: str | None = None
    supr_ngid: str | None = None
    supr_nid: str | None = None
    vendor_ack_id: str | None = None
    workspace_name: str | None = None
    workspace_uid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Button:
    """A quick-reply button or interactive (button/list) reply the user tapped."""

    payload: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    kind: str
    id: str | None = None
    url: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A user's reply (`suprsend_inbound_message`), flattened for handlers.

    `text` is the typed text, or the title of the button the user tapped.
    """

    type: str | None = None
    text: str | None = None
    from_: str | None = None
    to: str | None = None
    timestamp: datetime | None = None
    message_type: str | None = None
    context: dict[str, Any] | None = None
    source_message_id: str | None = None
    source_message_sent_via_suprsend: bool | None = None
    button: Button | None = None
    media: Media | None = None
    location: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reply_to(self) -> str | None:
        """Vendor id of the message this one quotes, if any."""
        return (self.context or {}).get("id")

    @property
    def button_payload(self) -> str | None:
        return self.button.payload if self.button else None

    @property
    def button_text(self) -> str | None:
        return self.button.text if self.button else None


@dataclass(frozen=True, slots=True)
class Event:
    """One SuprSend webhook, validated. `raw` is the payload exactly as received."""

    event_id: str
    channel: str
    event_type: str
    channel_value: str | None = None
    distinct_id: str | None = None
    status: str | None = None
    timestamp: datetime | None = None
    workflow_name: str | None = None
    template: str | None = None
    vendor_name: str | None = None
    vendor_response: dict[str, Any] | None = None
    version: str | None = None
    reference: Reference = field(default_factory=Reference)
    message: InboundMessage | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_status(self) -> bool:
        return self.event_type == STATUS

    @property
    def is_inbound(self) -> bool:
        return self.event_type == INBOUND_MESSAGE

    @property
    def supr_nid(self) -> str | None:
        return self.reference.supr_nid
