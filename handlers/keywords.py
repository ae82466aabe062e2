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
from .registry import Registry

if TYPE_CHECKING:  # the receiver registers these handlers too, but only the worker runs them
    from .integrations.followup import Followup

STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "OPTOUT")
HELP_WORDS = ("HELP", "INFO")
_config: dict[str, object] = {}


def enable_keywords(registry: Registry, *, stop_event: str = "unsubscribe_requested",
                    help_event: str = "help_requested", stop_words: Iterable[str] = STOP_WORDS,
                    help_words: Iterable[str] = HELP_WORDS) -> None:
    stop, help_ = [w.strip().upper() for w in stop_words], [w.strip().upper() for w in help_words]
    _config.update(stop_event=stop_event, help_event=help_event)

    def words(ws: list[str]) -> str:  # the whole reply is the word: "weekend" is not END
        return r"(?i)\A\s*(" + "|".join(map(re.escape, ws)) + r")\s*\Z"

    registry.keyword_pattern = re.compile(words(stop + help_))
    registry(event_type="inbound_message", text=words(stop), name="suprhook.keywords.stop")(on_stop)
    registry(event_type="inbound_message", text=words(help_), name="suprhook.keywords.help")(on_help)
    for name in ("suprhook.keywords.stop", "suprhook.keywords.help"):
        registry.get(name).keyword = True


def _properties(event: Event) -> dict[str, object]:
    text = event.message.text.strip() if event.message and event.message.text else None
    return {"channel": event.channel, "channel_value": event.channel_value, "keyword": text,
            "replied_to_nid": event.message.reply_to_nid if event.message else None}


def on_stop(event: Event, followup: Followup, conversation) -> None:
    conversation.clear()
    if event.distinct_id:
        followup.track_event(event.distinct_id, str(_config["stop_event"]), _properties(event))


def on_help(event: Event, followup: Followup) -> None:
    if event.distinct_id:
        followup.track_event(event.distinct_id, str(_config["help_event"]), _properties(event))
