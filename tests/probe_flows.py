"""Reply-flow handlers the two-way tests run in real worker processes (see test_reply_flows.py)."""
import time

from suprhook.handlers import on
from suprhook.handlers.keywords import enable_keywords

from .probe_handlers import record  # noqa: F401  (also registers worker_ready -> ready file)

enable_keywords(on)


@on.reply(r"(?i)^\s*yes\b", workflow="Order Flow")
def confirm_order(event, followup, match):
    result = followup.track_event(event.distinct_id, "order_confirmed", {"order_nid": event.message.reply_to_nid})
    record("confirm_order", event, result=result["success"])


@on.reply(r"(?i)^\s*no\b", workflow="Order Flow")
def cancel_order(event, followup):
    followup.track_event(event.distinct_id, "order_cancelled", {"order_nid": event.message.reply_to_nid})
    record("cancel_order", event)


# A three-step survey: any reply starts it, the next asks the size, the last takes the address.
@on.reply(workflow="Survey", state="")
def survey_start(event, conversation):
    conversation.set("asked_size", started_by=event.message.text)
    record("survey_start", event, state=conversation.state)


@on.reply(workflow="Survey", state="asked_size")
def survey_size(event, conversation):
    conversation.set("asked_address", size=event.message.text.strip().upper())
    record("survey_size", event, state=conversation.state)


@on.reply(workflow="Survey", state="asked_address")
def survey_done(event, conversation, followup):
    answers = {**conversation.data, "address": event.message.text}
    followup.track_event(event.distinct_id, "survey_completed", answers)
    conversation.clear()
    record("survey_done", event, answers=answers)


@on.reply(workflow="Counter")
def count_replies(event, conversation):
    """Read, wait, write: two replies at once lose an update unless the conversation is locked."""
    seen = conversation.data.get("count", 0)
    time.sleep(0.5)
    conversation.set("counting", count=seen + 1)
    record("count_replies", event, count=seen + 1)
