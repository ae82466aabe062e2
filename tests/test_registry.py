"""Routing: filters combine, values OR, regex groups injected, bad handlers refused at import time."""
from __future__ import annotations

import re

import pytest

from suprhook.handlers import Registry
from suprhook.schemas import load_event

from .conftest import make_inbound, make_status


def fn_a(event): ...
def fn_b(event, match): ...
def fn_c(event, logger, attempt): ...
def fn_kwargs(**kwargs): return kwargs
def fn_bad(event, db): ...


def names(registry, payload):
    return sorted(h.name.rsplit(".", 1)[-1] for h in registry.match(load_event(payload)))


def test_filters_combine_and_values_or():
    on = Registry()
    on(channel="whatsapp", event_type="status", status=("delivered", "seen"))(fn_a)
    on(event_type="inbound_message", text=r"(?i)^yes")(fn_b)
    on()(fn_c)
    assert names(on, make_status("delivered")) == ["fn_a", "fn_c"]
    assert names(on, make_status("seen")) == ["fn_a", "fn_c"]
    assert names(on, make_status("failed")) == ["fn_c"]
    assert names(on, make_status("delivered", channel="sms")) == ["fn_c"]
    assert names(on, make_inbound("Yes!")) == ["fn_b", "fn_c"]
    assert names(on, make_inbound("no")) == ["fn_c"]


@pytest.mark.parametrize("kwargs, payload, expected", [
    ({"vendor": "gupshup"}, make_status(), True),
    ({"vendor": "twilio"}, make_status(), False),
    ({"workflow": "Purchase Made"}, make_status(), True),
    ({"template": "purchase-made"}, make_status(), True),
    ({"template": "other"}, make_status(), False),
    ({"text": "Hi"}, make_status(), False),  # a status has no text
])
def test_each_filter(kwargs, payload, expected):
    on = Registry()
    on(**kwargs)(fn_a)
    assert bool(on.match(load_event(payload))) is expected


def test_registering_twice_ors_the_filters():
    on = Registry()
    on(status="sent")(fn_a)
    on(status="failed")(fn_a)
    assert len(on) == 1
    assert names(on, make_status("sent")) == names(on, make_status("failed")) == ["fn_a"]
    assert names(on, make_status("delivered")) == []


def test_conflicting_options_are_refused():
    on = Registry()
    on(status="sent", max_retries=2)(fn_a)
    with pytest.raises(ValueError, match="max_retries"):
        on(status="failed", max_retries=5)(fn_a)


def test_injection_passes_only_declared_arguments():
    on = Registry()
    on(text=r"(?P<answer>yes|no)")(fn_b)
    on()(fn_kwargs)
    event = load_event(make_inbound("no thanks"))
    handler = on.match(event)[0]
    match = handler.matching_filter(event).text_match(event)
    assert match.group("answer") == "no"
    assert on.get("tests.test_registry.fn_kwargs").call(event, match=None, logger=None, attempt=0)["event"] is event


def test_unknown_parameter_is_refused_with_the_allowed_names():
    with pytest.raises(TypeError, match=r"'db'.*event, match, logger, attempt"):
        Registry()(status="sent")(fn_bad)


def test_nested_functions_are_refused():
    def local(event): ...
    with pytest.raises(ValueError, match="module level"):
        Registry()()(local)


@pytest.mark.parametrize("kwargs, error", [
    ({"status": ""}, TypeError), ({"channel": 5}, TypeError), ({"text": "("}, ValueError),
])
def test_bad_filters_fail_at_decoration(kwargs, error):
    with pytest.raises(error):
        Registry()(**kwargs)


def test_describe_for_routes_listing():
    on = Registry()
    on(channel="whatsapp", status=("seen", "delivered"), text=re.compile("^y"))(fn_a)
    assert on.get("tests.test_registry.fn_a").filters[0].describe() == \
        "channel=whatsapp status=delivered|seen text=/^y/"
    on2 = Registry()
    on2()(fn_a)
    assert on2.get("tests.test_registry.fn_a").filters[0].describe() == "(every event)"


def test_normalized_status_message_type_and_button_filters():
    from .conftest import SEED_INBOUND

    on = Registry()
    on(normalized_status="delivered")(fn_a)
    on(message_type=("button", "interactive"), button="CONFIRM")(fn_b)
    on(message_type="text")(fn_c)
    assert names(on, make_status("delivered")) == ["fn_a"]  # the gupshup DLR in the seed says DELIVERED
    assert names(on, make_inbound("hello")) == ["fn_c"]
    tapped = make_inbound()
    tapped["suprsend_inbound_message"].update(type="button", button={"payload": "CONFIRM", "text": "Yes"})
    del tapped["suprsend_inbound_message"]["text"]
    assert names(on, tapped) == ["fn_b"]
    tapped["suprsend_inbound_message"]["button"]["payload"] = "CANCEL"
    assert names(on, tapped) == []
    assert SEED_INBOUND["suprsend_inbound_message"]["type"] == "text"


def test_enum_filters_refuse_unknown_values():
    with pytest.raises(ValueError, match="not one of"):
        Registry()(normalized_status="deliverd")
    with pytest.raises(ValueError, match="not one of"):
        Registry()(message_type="txt")


@pytest.mark.parametrize("text, expected", [
    ("STOP", ["suprhook.keywords.stop"]), ("  stop ", ["suprhook.keywords.stop"]), ("Help", ["suprhook.keywords.help"]),
    ("weekend", ["anything"]), ("my friend", ["anything"]), ("please don't stop", ["anything"]),
    ("need more info", ["anything"]), ("stop\nnow", ["anything"]),
])
def test_keywords_only_when_the_whole_reply_is_the_word(text, expected):
    from suprhook.handlers.keywords import enable_keywords

    on = Registry()
    on.reply(r"(?s).*", name="anything")(fn_a)
    enable_keywords(on)
    assert sorted(h.name for h in on.match(load_event(make_inbound(text)))) == expected
