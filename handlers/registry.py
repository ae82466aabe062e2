"""Handler registration and routing: `@on(...)` records a function with its filters.

Each handler becomes its own Celery task (so one failing handler never re-runs another). The
receiver asks `registry.match(event)` which handlers want an event and enqueues one task each.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Iterator

from ..schemas import Event, MessageType, NormalizedStatus

# Names a handler may declare as parameters; each is injected by name (Slack Bolt style).
INJECTABLE = ("event", "match", "logger", "attempt", "followup", "conversation")
FILTER_NAMES = ("channel", "event_type", "status", "vendor", "workflow", "template", "normalized_status",
                "message_type", "button", "state", "text")
ANY_STATE = object()  # matching without looking at conversation state (the receiver cannot)

Value = str | Iterable[str] | None


@dataclass(frozen=True)
class Filters:
    """All given filters must match; a filter given as several values matches any of them."""

    channel: frozenset[str] | None = None
    event_type: frozenset[str] | None = None
    status: frozenset[str] | None = None
    vendor: frozenset[str] | None = None
    workflow: frozenset[str] | None = None
    template: frozenset[str] | None = None
    normalized_status: frozenset[str] | None = None
    message_type: frozenset[str] | None = None
    button: frozenset[str] | None = None
    state: frozenset[str] | None = None  # "" stands for "no conversation state yet"
    text: re.Pattern[str] | None = None

    def match(self, event: Event, state: Any = ANY_STATE) -> bool:
        """Does `event` pass? `state` (the conversation's) is only checked when given: in the worker."""
        if state is not ANY_STATE and self.state is not None and (state or "") not in self.state:
            return False
        message = event.message
        checks = (
            (self.channel, event.channel), (self.event_type, event.event_type),
            (self.status, event.status), (self.vendor, event.vendor_name),
            (self.workflow, event.workflow_name), (self.template, event.template),
            (self.normalized_status, event.vendor.normalized_status.value),
            (self.message_type, message.type.value if message else None),
        )
        if any(allowed is not None and actual not in allowed for allowed, actual in checks):
            return False
        if self.button is not None and not (message and self.button & {message.button_payload, message.button_text}):
            return False
        return self.text is None or self.text_match(event) is not None

    def text_match(self, event: Event) -> re.Match[str] | None:
        text = event.message.text if event.message else None
        return self.text.search(text) if self.text is not None and text is not None else None

    def describe(self) -> str:
        parts = [f"{name}={'|'.join(sorted(x or '(none)' for x in v))}" for name in FILTER_NAMES[:-1]
                 if (v := getattr(self, name)) is not None]
        if self.text is not None:
            parts.append(f"text=/{self.text.pattern}/")
        return " ".join(parts) or "(every event)"


@dataclass
class Handler:
    func: Callable[..., Any]
    name: str
    filters: list[Filters] = field(default_factory=list)
    max_retries: int | None = None
    rate_limit: str | None = None
    queue: str | None = None
    params: tuple[str, ...] = ()
    takes_kwargs: bool = False
    keyword: bool = False  # a built-in STOP/HELP handler: the only kind a keyword message reaches

    @property
    def task_name(self) -> str:
        return f"suprhook.handler.{self.name}"

    @property
    def needs_conversation(self) -> bool:
        return "conversation" in self.params or any(f.state is not None for f in self.filters)

    def matching_filter(self, event: Event, state: Any = ANY_STATE) -> Filters | None:
        return next((f for f in self.filters if f.match(event, state)), None)

    def call(self, event: Event, **context: Any) -> Any:
        """Run the handler, passing only the arguments it declared."""
        available = {"event": event, **context}
        if self.takes_kwargs:
            return self.func(**available)
        return self.func(**{name: available.get(name) for name in self.params})


class Registry:
    """A set of handlers. `on = Registry()`; `@on(channel="whatsapp", event_type="inbound_message")`."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._keywords: re.Pattern[str] | None = None

    @property
    def keyword_pattern(self) -> re.Pattern[str] | None:
        """Replies matching this reach only the keyword handlers (`reserve_replies`)."""
        return self._keywords

    def reserve_replies(self, pattern: re.Pattern[str] | None) -> None:
        """Send replies whose text matches `pattern` to the handlers registered with `keyword=True` alone
        (`enable_keywords` reserves STOP and HELP this way); None lifts the reservation."""
        self._keywords = pattern

    def __call__(self, *, channel: Value = None, event_type: Value = None, status: Value = None,
                 vendor: Value = None, workflow: Value = None, template: Value = None,
                 normalized_status: Value = None, message_type: Value = None, button: Value = None,
                 state: Value = None, text: str | re.Pattern[str] | None = None, max_retries: int | None = None,
                 rate_limit: str | None = None, queue: str | None = None,
                 name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        filters = Filters(
            channel=_values("channel", channel), event_type=_values("event_type", event_type),
            status=_values("status", status), vendor=_values("vendor", vendor),
            workflow=_values("workflow", workflow), template=_values("template", template),
            normalized_status=_values("normalized_status", normalized_status, NormalizedStatus),
            message_type=_values("message_type", message_type, MessageType),
            button=_values("button", button), state=_values("state", state, allow_empty=True),
            text=_pattern(text),
        )

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add(func, filters, name=name, max_retries=max_retries, rate_limit=rate_limit, queue=queue)
            return func

        return decorator

    def add(self, func: Callable[..., Any], filters: Filters, *, name: str | None = None,
            max_retries: int | None = None, rate_limit: str | None = None,
            queue: str | None = None, keyword: bool = False) -> Handler:
        """Register `func`; registering the same function again adds another (OR-ed) filter set.
        `keyword`: the handler also gets replies reserved by `reserve_replies` (STOP, HELP)."""
        key = name or f"{func.__module__}.{func.__qualname__}"
        if "<" in key:
            raise ValueError(f"handler {key!r} is a lambda or nested function: define handlers at "
                             "module level, so the worker imports the same function")
        if not re.fullmatch(r"[\w.:-]+", key):
            raise ValueError(f"handler name {key!r} may only hold letters, digits, '_', '.', ':', '-'")
        options = {"max_retries": max_retries, "rate_limit": rate_limit, "queue": queue}
        existing = self._handlers.get(key)
        if existing is None:
            params, takes_kwargs = _injectable_params(func)
            existing = self._handlers[key] = Handler(func=func, name=key, params=params,
                                                     takes_kwargs=takes_kwargs, **options)
        elif existing.func is not func:
            raise ValueError(f"two different functions are registered as handler {key!r}; pass name=")
        else:
            for option, value in options.items():
                if value is not None and getattr(existing, option) not in (None, value):
                    raise ValueError(f"handler {key!r} registered twice with different {option}")
                if value is not None:
                    setattr(existing, option, value)
        existing.filters.append(filters)
        existing.keyword = existing.keyword or keyword
        return existing

    def discard(self, name: str) -> None:
        """Unregister the handler `name` (nothing happens if there is none)."""
        self._handlers.pop(name, None)

    def reply(self, text: str | re.Pattern[str] | None = None, **filters: Any) -> Callable[[Callable[..., Any]],
                                                                                          Callable[..., Any]]:
        """`@on.reply(r"(?i)^yes", workflow="Purchase Made")`: a handler for inbound replies."""
        return self(event_type="inbound_message", text=text, **filters)

    def match(self, event: Event) -> list[Handler]:
        matched = [h for h in self._handlers.values() if h.matching_filter(event) is not None]
        if self._keywords is not None and event.message is not None and event.message.text \
                and self._keywords.search(event.message.text):
            return [h for h in matched if h.keyword]  # STOP/HELP go to the keyword handlers alone
        return matched

    def get(self, name: str) -> Handler:
        return self._handlers[name]

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers.values())

    def __len__(self) -> int:
        return len(self._handlers)

    def clear(self) -> None:
        self._handlers.clear()
        self._keywords = None


def _values(name: str, value: Value, enum: type[Enum] | None = None,
            allow_empty: bool = False) -> frozenset[str] | None:
    if value is None:
        return None
    values = frozenset([value] if isinstance(value, str) else value)
    if not values or not all(isinstance(v, str) and (v or allow_empty) for v in values):
        raise TypeError(f"filter {name}= takes a non-empty string or a collection of them")
    if enum is not None:
        allowed = {member.value for member in enum}  # type: ignore[attr-defined]
        unknown = {str(getattr(v, "value", v)) for v in values} - allowed
        if unknown:
            raise ValueError(f"filter {name}={sorted(unknown)} is not one of: {', '.join(sorted(allowed))}")
        values = frozenset(str(getattr(v, "value", v)) for v in values)
    return values


def _pattern(text: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if text is None or isinstance(text, re.Pattern):
        return text
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"filter text={text!r} is not a valid regular expression: {exc}") from None


def _injectable_params(func: Callable[..., Any]) -> tuple[tuple[str, ...], bool]:
    params, takes_kwargs = [], False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            takes_kwargs = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.name in INJECTABLE and p.kind is not p.POSITIONAL_ONLY:
            params.append(p.name)
        elif p.default is p.empty:
            raise TypeError(
                f"handler {func.__qualname__} has parameter {p.name!r}, which suprhook cannot "
                f"supply; declare any of: {', '.join(INJECTABLE)}"
            )
    return tuple(params), takes_kwargs


on = Registry()
