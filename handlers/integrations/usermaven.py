"""Opt-in Usermaven sink: notification events forwarded as Usermaven custom events.

Enabled when USERMAVEN_API_KEY and USERMAVEN_SERVER_TOKEN are set; then the receiver and the worker
both register the built-in handler `suprhook.usermaven`. Its run only records the Usermaven event in
a durable outbox (`handlers.stores.usermaven_outbox`), so it is fast, never blocks another handler, and its
success means the event is safely stored; a flusher thread per worker sends bulk arrays to
`{USERMAVEN_HOST}/api/v1/s2s/event?token=API_KEY.SERVER_TOKEN` with backoff, and on worker shutdown.

Plain `requests`, not the `usermaven` package (0.1.2): its client keeps events in an in-memory queue
drained by a thread started in its constructor, so a client built before Celery's prefork fork has no
thread in the pool children, a crashed worker loses the queue, a full queue or a batch that failed
its 3 retries is dropped; `track()` cannot set `_timestamp` (no historical events) or `event_id`, and
it sends a random `anonymous_id` per call. It also pins old `backoff<2`, `monotonic` and `six`.

Each event is `{api_key, event_id, event_type, _timestamp, event_attributes, ids, user, src,
screen_resolution}` as Usermaven's server-to-server docs show; `event_id` is suprhook's event id, so
a batch sent again (a crash between the POST and recording it) carries the same ids. `company` is
left out: SuprSend knows nothing of the user's company (the docs and the package treat it as optional).
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ...schemas import Event

from ..errors import ConfigError
from ..registry import Filters, Registry
from ..settings import Settings, redact_url

if TYPE_CHECKING:  # the outbox and its flusher are the worker's: the receiver only registers the handler
    from ..stores.usermaven_outbox import Flusher, Outbox

log = logging.getLogger("suprhook.usermaven")
HANDLER_NAME = "suprhook.usermaven"
DEFAULT_HOST = "https://events.usermaven.com"
DEFAULT_EVENTS = ("delivered=notification_delivered,seen=notification_read,read=notification_read,"
                  "clicked=notification_clicked,failed=notification_failed,reply={channel}_reply_received")
REPLY = "reply"  # the selector word for inbound messages; any other word is a SuprSend status, `*` any status
_SELECTOR = re.compile(r"^(?:(?P<channel>[\w-]+):)?(?P<word>[\w-]+|\*)$")


@dataclass(frozen=True)
class UsermavenConfig:
    """USERMAVEN_* settings; the key and token never appear in the repr."""

    api_key: str = field(default="", repr=False)
    server_token: str = field(default="", repr=False)
    host: str = DEFAULT_HOST
    events: tuple[tuple[str, str], ...] = ()  # (selector, name template); "" as name: do not send
    batch_size: int = 100
    flush_interval: float = 1.0
    max_batch_bytes: int = 475_000
    timeout: float = 10.0
    retry_base: float = 1.0
    retry_max: float = 300.0
    keep_sent: float = 86400.0

    @property
    def enabled(self) -> bool:
        return bool(self.api_key and self.server_token)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "UsermavenConfig":
        """Read USERMAVEN_*; keys in `overrides` (the mapping `Settings.load` takes) win over the environment."""
        src: dict[str, Any] = dict(os.environ if environ is None else environ)
        src.update({k: v for k, v in (overrides or {}).items() if v is not None})
        get = lambda key, default: default if src.get(key) in (None, "") else src[key]

        def num(key: str, default: float, kind: type, low: float) -> Any:
            try:
                value = kind(get(key, default))
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be a {kind.__name__}, got {src.get(key)!r}") from None
            if value < low:
                raise ConfigError(f"{key} must be at least {low}, got {value}")
            return value

        api_key, token = str(get("USERMAVEN_API_KEY", "")).strip(), str(get("USERMAVEN_SERVER_TOKEN", "")).strip()
        if bool(api_key) != bool(token):
            raise ConfigError("the Usermaven sink needs both USERMAVEN_API_KEY and USERMAVEN_SERVER_TOKEN")
        host = str(get("USERMAVEN_HOST", DEFAULT_HOST)).strip()
        if not re.match(r"^https?://[^/?#@\s]+/?$", host):
            raise ConfigError("USERMAVEN_HOST must be http(s)://host[:port] (no path, no credentials), "
                              f"got {redact_url(host)!r}")
        return cls(api_key=api_key, server_token=token, host=host.rstrip("/"),
                   events=parse_events(get("USERMAVEN_EVENTS", DEFAULT_EVENTS)),
                   batch_size=num("USERMAVEN_BATCH_SIZE", 100, int, 1),
                   flush_interval=num("USERMAVEN_FLUSH_INTERVAL", 1.0, float, 0.01),
                   max_batch_bytes=num("USERMAVEN_BATCH_BYTES", 475_000, int, 1024),
                   timeout=num("USERMAVEN_TIMEOUT", 10.0, float, 0.1),
                   retry_base=num("USERMAVEN_RETRY_BASE", 1.0, float, 0.01),
                   retry_max=num("USERMAVEN_RETRY_MAX", 300.0, float, 0.01),
                   keep_sent=num("USERMAVEN_KEEP_SENT", 86400.0, float, 0))

    def event_name(self, event: Event) -> str | None:
        """The Usermaven event name for `event`, or None when it is not forwarded. The most specific
        selector wins: `channel:word` over `word` over `channel:*` over `*`."""
        word = REPLY if event.is_inbound else event.status if event.is_status else None
        if word is None:
            return None
        table = dict(self.events)
        for key in (f"{event.channel}:{word}", word) + ((f"{event.channel}:*", "*") if word != REPLY else ()):
            if key in table:
                return table[key].format(channel=event.channel, status=event.status or REPLY) or None
        return None

    def filters(self) -> list[Filters]:
        """Routing filters covering every selector, so the receiver enqueues the sink only for them."""
        groups: dict[tuple[str | None, str], set[str] | None] = {}  # (channel, event_type) -> statuses
        for selector, name in self.events:
            if not name:
                continue
            channel, _, word = selector.rpartition(":")
            key = (channel or None, "inbound_message" if word == REPLY else "status")
            if word in (REPLY, "*"):
                groups[key] = None  # every status / every reply
            elif groups.get(key, set()) is not None:
                groups.setdefault(key, set()).add(word)  # type: ignore[union-attr]
        return [Filters(channel=frozenset([channel]) if channel else None, event_type=frozenset([event_type]),
                        status=frozenset(words) if words else None)
                for (channel, event_type), words in groups.items()]

    def body(self, event: Event, now: float | None = None) -> dict[str, Any] | None:
        """The Usermaven event (without api_key, added when sending), or None when not forwarded."""
        name = self.event_name(event)
        if not name or not event.distinct_id:
            return None
        at = event.timestamp.timestamp() if event.timestamp else (now or time.time())
        message, vendor = event.message, event.vendor
        attributes = {
            "channel": event.channel, "workflow": event.workflow_name, "template": event.template,
            "vendor": event.vendor_name, "status": event.status, "vendor_status": vendor.normalized_status.value,
            "error": vendor.error_message, "error_code": vendor.error_code, "supr_nid": event.reference.supr_nid,
            "workspace": event.reference.workspace_name, "suprhook_event_id": event.event_id,
        }
        if message is not None:
            attributes.update(message_type=message.type.value, button=message.button_payload or message.button_text,
                              replied_to_nid=message.reply_to_nid)
        user: dict[str, Any] = {"anonymous_id": event.distinct_id, "id": event.distinct_id}
        email = event.distinct_id if "@" in event.distinct_id else event.channel_value if event.channel == "email" \
            else None
        if email:
            user["email"] = email
        return {"event_id": event.event_id, "event_type": name, "_timestamp": int(round(at * 1000)),
                "event_attributes": {k: v for k, v in attributes.items() if v not in (None, "")},
                "ids": {}, "user": user, "screen_resolution": "0", "src": "http"}


def parse_events(value: str | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`delivered=notification_delivered,whatsapp:reply=wa_reply,*=notification_{status},sent=` (a
    mapping works too). Selectors: a SuprSend status, `reply`, or `*`, optionally `channel:`-prefixed.
    Names may use `{channel}` and `{status}`; an empty name turns a selector off."""
    pairs = value.items() if isinstance(value, Mapping) else (
        part.split("=", 1) if "=" in part else (part, None) for part in str(value).split(",") if part.strip())
    out: dict[str, str] = {}
    for selector, name in pairs:
        selector = str(selector).strip()
        if name is None or not _SELECTOR.match(selector):
            raise ConfigError(f"USERMAVEN_EVENTS: {selector!r} is not [channel:]status|reply|*=event_name")
        name = str(name).strip()
        try:
            name.format(channel="whatsapp", status="delivered")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"USERMAVEN_EVENTS: name {name!r} may only use {{channel}} and {{status}}") from None
        out[selector] = name
    if not any(out.values()):
        raise ConfigError("USERMAVEN_EVENTS selects no events")
    return tuple(out.items())


class UsermavenSink:
    """The Usermaven sink of one process: `forward` is the built-in handler (it puts the event's
    Usermaven event in the outbox); the worker runs the flusher (`start`). The outbox and the flusher
    are made on first use, so a receiver, which only registers the handler, opens nothing."""

    def __init__(self, config: UsermavenConfig, store_url: str) -> None:
        self.config, self.store_url = config, store_url
        self._outbox: "Outbox | None" = None
        self._flusher: "Flusher | None" = None

    def __repr__(self) -> str:
        return f"UsermavenSink({self.config!r})"

    @property
    def outbox(self) -> "Outbox":
        if self._outbox is None:
            from ..stores.usermaven_outbox import Outbox

            self._outbox = Outbox(self.store_url)
        return self._outbox

    @property
    def flusher(self) -> "Flusher":
        if self._flusher is None:
            from ..stores.usermaven_outbox import Flusher, Sender

            c = self.config
            self._flusher = Flusher(self.outbox, Sender(c.host, c.api_key, c.server_token, c.timeout),
                                    batch_size=c.batch_size, interval=c.flush_interval, retry_base=c.retry_base,
                                    retry_max=c.retry_max, keep_sent=c.keep_sent, max_bytes=c.max_batch_bytes)
        return self._flusher

    def record(self, event: Event) -> bool:
        """Put the event's Usermaven event in the outbox; False if not forwarded or already there."""
        body = self.config.body(event)
        return body is not None and self.outbox.add(event.event_id, body)

    def forward(self, event: Event, logger: logging.Logger) -> None:
        """The built-in handler `suprhook.usermaven`: records the event for the flusher."""
        if self.record(event):
            logger.debug("queued for Usermaven event_id=%s", event.event_id)

    def start(self) -> None:
        """Start the flusher thread (worker_ready) and flush what is due on worker shutdown."""
        from celery.signals import worker_shutdown

        self.flusher.start()
        worker_shutdown.connect(self._on_shutdown, weak=False)

    def _on_shutdown(self, **_: Any) -> None:
        self.flusher.stop(flush=True, timeout=min(30.0, 2 * self.config.timeout + 1))

    def requeue_dead(self) -> int:
        return self.outbox.requeue_dead()


def install(registry: Registry, settings: Settings, config: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> UsermavenSink | None:
    """Register `suprhook.usermaven` in `registry` when USERMAVEN_API_KEY and USERMAVEN_SERVER_TOKEN are
    set (the composition root does, for receiver and worker alike: the receiver must enqueue its task);
    the sink, or None when not configured. Installing again replaces the handler."""
    um = UsermavenConfig.load(config, environ)
    if not um.enabled:
        return None
    sink = UsermavenSink(um, settings.store_url)
    filters = um.filters()
    replaced = any(h.name == HANDLER_NAME for h in registry)
    registry.discard(HANDLER_NAME)
    forward = sink.forward  # one bound method: a handler is one function, with OR-ed filter sets
    for selected in filters:  # keyword=True: analytics counts STOP/HELP replies too; it never acts on them
        registry.add(forward, selected, name=HANDLER_NAME, keyword=True)
    if not replaced:
        log.info("usermaven: sink on, host=%s events=%s", um.host, ",".join(f"{s}={n}" for s, n in um.events if n))
    return sink
