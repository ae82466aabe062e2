"""Opt-in STOP / UNSUBSCRIBE / HELP handling for replies.

    from suprhook import enable_keywords, on
    enable_keywords(on)                      # in your handler module, so receiver and worker both have it

A reply that is exactly one of these words (any case, surrounding spaces ignored) reaches only the
keyword handlers, never your other reply handlers. STOP words send `stop_event` into SuprSend (build a
workflow on it that updates the user's preferences) and end the conversation; HELP words send
`help_event` (a workflow that answers with your help text).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from ..schemas import Event
from .registry import Filters, Registry

if TYPE_CHECKING:  # the receiver registers these handlers too, but only the worker runs them
    from .integrations.followup import Followup
    from .stores.conversation import Conversation

STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "OPTOUT")
HELP_WORDS = ("HELP", "INFO")
STOP_HANDLER, HELP_HANDLER = "suprhook.keywords.stop", "suprhook.keywords.help"


def enable_keywords(registry: Registry, *, stop_event: str = "unsubscribe_requested",
                    help_event: str = "help_requested", stop_words: Iterable[str] = STOP_WORDS,
                    help_words: Iterable[str] = HELP_WORDS) -> None:
    """Register the STOP and HELP handlers in `registry` and reserve their words for them (calling it
    again replaces both)."""
    stop, help_ = [w.strip().upper() for w in stop_words], [w.strip().upper() for w in help_words]

    def words(ws: list[str]) -> Filters:  # the whole reply is the word: "weekend" is not END
        return Filters(event_type=frozenset({"inbound_message"}),
                       text=re.compile(r"(?i)\A\s*(" + "|".join(map(re.escape, ws)) + r")\s*\Z"))

    registry.reserve_replies(words(stop + help_).text)
    for name, handler, filters in ((STOP_HANDLER, StopHandler(stop_event), words(stop)),
                                   (HELP_HANDLER, HelpHandler(help_event), words(help_))):
        registry.discard(name)
        registry.add(handler, filters, name=name, keyword=True)


def _properties(event: Event) -> dict[str, object]:
    text = event.message.text.strip() if event.message and event.message.text else None
    return {"channel": event.channel, "channel_value": event.channel_value, "keyword": text,
            "replied_to_nid": event.message.reply_to_nid if event.message else None}


class StopHandler:
    """STOP: ends the conversation and sends `event_name` into SuprSend."""

    def __init__(self, event_name: str) -> None:
        self.event_name = event_name

    def __call__(self, event: Event, followup: Followup, conversation: Conversation) -> None:
        conversation.clear()
        if event.distinct_id:
            followup.track_event(event.distinct_id, self.event_name, _properties(event))


class HelpHandler:
    """HELP: sends `event_name` into SuprSend (a workflow that answers with your help text)."""

    def __init__(self, event_name: str) -> None:
        self.event_name = event_name

    def __call__(self, event: Event, followup: Followup) -> None:
        if event.distinct_id:
            followup.track_event(event.distinct_id, self.event_name, _properties(event))
