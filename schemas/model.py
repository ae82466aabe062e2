"""The normalized event a handler receives. Plain frozen dataclasses: cheap, typed, picklable-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

STATUS = "status"
INBOUND_MESSAGE = "inbound_message"
KNOWN_EVENT_TYPES = (STATUS, INBOUND_MESSAGE)
KNOWN_CHANNELS = ("whatsapp", "sms", "email", "androidpush", "iospush", "webpush", "slack", "ms_teams", "inbox")
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")


class NormalizedStatus(str, Enum):
    """A vendor's delivery status, mapped onto one closed set (compares equal to its string)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CLICKED = "clicked"
    REPLIED = "replied"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class MessageType(str, Enum):
    """What kind of reply the user sent (compares equal to its string)."""

    TEXT = "text"
    BUTTON = "button"
    INTERACTIVE = "interactive"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Any) -> "MessageType":
        word = str(value or "").strip().lower()
        word = {"voice": "audio", "file": "document", "contact": "contacts", "quick_reply": "button",
                "gif": "video", "picture": "image", "photo": "image"}.get(word, word)
        return cls._value2member_map_.get(word, cls.UNKNOWN)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class VendorInfo:
    """The vendor's own view of the message, normalized; `raw` is its untouched callback dict."""

    name: str | None = None
    message_id: str | None = None
    status: str | None = None
    normalized_status: NormalizedStatus = NormalizedStatus.UNKNOWN
    error_code: str | None = None
    error_message: str | None = None
    timestamp: datetime | None = None
    recipient: str | None = None
    sender: str | None = None
    profile_name: str | None = None
    raw: Any = field(default_factory=dict, repr=False)
    drift: str | None = None  # why the vendor dict did not match its schema, if it did not


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

    `text` is the typed text, or the title of the button the user tapped. SuprSend's own fields win;
    the vendor's callback fills what SuprSend left out (media URLs, button payloads, ...).
    """

    type: MessageType = MessageType.UNKNOWN
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
    reply_to: str | None = None  # vendor id of the message this one replies to / quotes
    reply_to_nid: str | None = None  # supr_nid of the SuprSend notification replied to
    extra: dict[str, Any] = field(default_factory=dict)

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
    vendor: VendorInfo = field(default_factory=VendorInfo)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    # In a handler: the notification's status history and forward-only current status (set by the worker).
    timeline: Any = field(default=None, repr=False, compare=False)

    @property
    def is_status(self) -> bool:
        return self.event_type == STATUS

    @property
    def is_inbound(self) -> bool:
        return self.event_type == INBOUND_MESSAGE

    @property
    def supr_nid(self) -> str | None:
        return self.reference.supr_nid
