"""The testing kit: sample payloads for every vendor (schemas.samples), dispatch_sync and the recorder
(handlers.testing), and the pytest plugin's fixtures, entry point included."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from importlib.metadata import entry_points

import pytest

from suprhook.handlers import PermanentError, Registry
from suprhook.handlers.integrations.followup import FollowupUnavailable
from suprhook.handlers.keywords import enable_keywords
from suprhook.handlers.testing import FollowupRecorder, SyncDispatcher, dispatch_sync, isolated_settings
from suprhook.schemas import load_event
from suprhook.schemas.samples import (STATUS_TO_VENDOR, VENDOR_SAMPLES, make_inbound_message, make_status_event,
                             supported_statuses, vendor_module)
from suprhook.schemas.vendors import MODULES

CHANNELS = ("whatsapp", "sms")
STATUS_CASES = [(v, c, s) for v in sorted(VENDOR_SAMPLES) for c in CHANNELS for s in supported_statuses(v, c)]
NO_ERROR_FIELDS = {("exotel", "whatsapp"), ("messagebird", "whatsapp")}  # these status formats carry no error
INBOUND_CASES = [(v, c) for v in sorted(VENDOR_SAMPLES) for c in CHANNELS]
BUTTON_CASES = [(v, c) for v, c in INBOUND_CASES if VENDOR_SAMPLES[v].buttons(c)]


# -- samples ----------------------------------------------------------------------------------------


def test_every_vendor_module_has_samples():
    assert set(VENDOR_SAMPLES) == set(MODULES)


@pytest.mark.parametrize("vendor,channel,status", STATUS_CASES)
def test_status_sample_loads_and_normalizes_to_the_requested_vendor_and_status(vendor, channel, status):
    at = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=timezone.utc)
    payload = make_status_event(status, channel, vendor, at=at, workflow="Wf", template="tpl", distinct_id="u-1")
    event = load_event(payload)
    assert (event.event_type, event.channel, event.status, event.distinct_id) == ("status", channel, status, "u-1")
    assert (event.workflow_name, event.template, event.vendor_name, event.timestamp) == ("Wf", "tpl", vendor, at)
    assert event.vendor.drift is None
    wanted = STATUS_TO_VENDOR[status]
    if wanted is None:  # clicked / dismissed: SuprSend's own tracking, no vendor callback
        assert "vendor_response" not in payload
        assert event.vendor.name == vendor and event.vendor.normalized_status == "unknown"
    else:
        assert event.vendor.name == vendor
        assert event.vendor.normalized_status == wanted
        word = VENDOR_SAMPLES[vendor].words(channel)[wanted]
        assert event.vendor.status.lower() == (f"TEXT_{word}" if vendor == "aws_sns" else word).lower()
        if event.vendor.timestamp is not None:  # Twilio's callbacks carry no time
            assert abs((event.vendor.timestamp - at).total_seconds()) < 1
        if wanted.value in ("failed", "undelivered") and (vendor, channel) not in NO_ERROR_FIELDS:
            assert event.vendor.error_code or event.vendor.error_message


@pytest.mark.parametrize("vendor,channel", INBOUND_CASES)
def test_inbound_sample_loads_with_the_requested_text(vendor, channel):
    status = make_status_event("delivered", channel, vendor)
    payload = make_inbound_message("  Yes, deliver on Friday ", channel, vendor, in_reply_to=status,
                                   phone="+919876543210")
    event = load_event(payload)
    assert (event.event_type, event.channel, event.channel_value) == ("inbound_message", channel, "+919876543210")
    assert event.message.text == "  Yes, deliver on Friday "
    assert event.message.type == "text"
    assert event.message.reply_to_nid == status["reference"]["supr_nid"] == event.reference.supr_nid
    assert event.vendor.name == vendor and event.vendor.drift is None
    if vendor == "msg91":  # MSG91 documents no inbound callback: no vendor_response at all
        assert "vendor_response" not in payload and event.vendor.normalized_status == "unknown"
    else:
        assert event.vendor.normalized_status == "replied"
        assert event.vendor.raw == payload["vendor_response"][vendor]


@pytest.mark.parametrize("vendor,channel", BUTTON_CASES)
def test_button_sample_carries_payload_and_title_in_both_parts(vendor, channel):
    payload = make_inbound_message("Yes, confirm", channel, vendor, button="CONFIRM_ORDER")
    event = load_event(payload)
    assert (event.message.button_payload, event.message.button_text) == ("CONFIRM_ORDER", "Yes, confirm")
    assert event.message.text == "Yes, confirm" and event.message.type == "button"
    assert event.vendor.normalized_status == "replied" and event.vendor.drift is None
    vendor_only = load_event({**payload, "suprsend_inbound_message": {"source_message_id": "x"}})
    assert vendor_only.message.button_payload == "CONFIRM_ORDER"  # the vendor's own dict has the button too


def test_statuses_and_buttons_a_vendor_cannot_express_are_refused_with_the_alternatives():
    with pytest.raises(ValueError, match=r"msg91 on sms reports no 'read' status .*can report: delivered, failed"):
        make_status_event("seen", "sms", "msg91")
    with pytest.raises(ValueError, match=r"twilio on sms reports no 'read'"):
        make_status_event("seen", "sms", "twilio")  # read receipts are WhatsApp-only
    with pytest.raises(ValueError, match=r"karix documents no button reply on whatsapp; vendors that do: .*meta"):
        make_inbound_message("Yes", vendor="karix", button="OK")
    with pytest.raises(ValueError, match="no samples for vendor 'acme'"):
        make_status_event(vendor="acme")
    with pytest.raises(ValueError, match="error= describes a failure"):
        make_status_event("delivered", error="42")


def test_aliases_errors_times_overrides_and_fresh_ids():
    payload = make_status_event("failed", vendor="whatsapp_cloud", error=("131047", "Re-engagement message"),
                                reference={"workspace_uid": "ws-1"}, tenant_id="acme", version=2)
    event = load_event(payload)
    assert vendor_module("whatsapp_cloud") == "meta" and payload["vendor_name"] == "whatsapp_cloud"
    assert (event.vendor.name, event.vendor.error_code, event.vendor.error_message) == \
        ("meta", "131047", "Re-engagement message")
    assert event.reference.workspace_uid == "ws-1" and event.reference.supr_nid  # merged, not replaced
    assert event.extra == {"tenant_id": "acme"} and event.version == "2"
    twilio = load_event(make_status_event("undelivered", "sms", "twilio"))
    assert (twilio.vendor.error_code, twilio.vendor.error_message) == ("30003", "Unreachable destination handset")
    assert load_event(make_status_event()).event_id != load_event(make_status_event()).event_id
    nid = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    pinned = [load_event(make_status_event(nid=nid, at=datetime(2025, 1, 1, tzinfo=timezone.utc)))
              for _ in range(2)]
    assert pinned[0].reference.supr_nid == nid and pinned[0].status == pinned[1].status
    with pytest.raises(ValueError, match="timezone-aware"):
        make_status_event(at=datetime(2025, 1, 1))
    none = load_event(make_status_event(vendor=None))
    assert none.vendor_name is None and none.vendor_response is None


# -- dispatch_sync ------------------------------------------------------------------------------------

kit = Registry()


@kit.reply(r"(?i)^\s*(yes|y)\b", workflow="Kit")
@kit.reply(button="CONFIRM", workflow="Kit")
def kit_confirm(event, followup, match, attempt):
    followup.track_event(event.distinct_id, "kit_confirmed", {"nid": event.message.reply_to_nid,
                                                              "word": match.group(1) if match else None,
                                                              "attempt": attempt})


@kit(event_type="status", workflow="Kit")
def kit_status(event):
    return event.timeline.current


@kit(event_type="status", workflow="Kit", normalized_status="failed")
def kit_failure(event):
    raise PermanentError(f"{event.vendor.name} {event.vendor.error_code}")


@kit.reply(workflow="Kit", text=r"(?i)^boom")
def kit_boom(event):
    raise RuntimeError("transient")


@kit.reply(workflow="KitSurvey", state="")
def kit_survey_start(event, conversation):
    conversation.set("asked_size")


@kit.reply(workflow="KitSurvey", state="asked_size")
def kit_survey_size(event, conversation, followup):
    followup.bulk([{"distinct_id": event.distinct_id, "event_name": "kit_size",
                    "properties": {"size": event.message.text}}])
    conversation.clear()


keyword_kit = Registry()
enable_keywords(keyword_kit)


@keyword_kit.reply(workflow="Kit")
def keyword_kit_any_reply(event):
    return None


def test_reply_runs_matching_handlers_and_records_the_followup_as_suprsend_would_get_it():
    status = make_status_event(workflow="Kit")
    outcomes = dispatch_sync(make_inbound_message("yes please", workflow="Kit", in_reply_to=status), registry=kit)
    assert outcomes.handlers == ["tests.test_testing_kit.kit_confirm"] and outcomes.get("kit_confirm").status == "ran"
    sent = outcomes.followup("kit_confirmed")
    assert (sent.distinct_id, sent.properties) == ("user@example.com", {
        "nid": status["reference"]["supr_nid"], "word": "yes", "attempt": 0})
    assert sent.handler == "tests.test_testing_kit.kit_confirm" and sent.causation["depth"] == 1
    assert sent.causation["event_id"] == outcomes.event.event_id
    assert sent.idempotency_key.startswith("suprhook-d1-") and sent.body["env"].startswith("suprhookTest")
    button = dispatch_sync(make_inbound_message("Confirm", vendor="meta", workflow="Kit", button="CONFIRM"),
                           registry=kit)
    assert button.followup("kit_confirmed").properties["word"] is None  # matched by the button filter set
    with pytest.raises(AssertionError, match=r"expected one 'nope' follow-up, got 0; sent: \[\('tests.*kit_confirmed'"):
        button.followup("nope")


def test_failures_say_whether_the_worker_would_retry():
    failed = dispatch_sync(make_status_event("failed", vendor="meta", workflow="Kit", error="131026"), registry=kit)
    assert [o.status for o in failed] == ["ran", "failed"]
    permanent = failed.get("kit_failure")
    assert isinstance(permanent.exception, PermanentError) and str(permanent.exception) == "meta 131026"
    assert not permanent.will_retry
    boom = dispatch_sync(make_inbound_message("boom", workflow="Kit"), registry=kit)
    assert boom.get("kit_boom").will_retry and boom.failed == [boom.get("kit_boom")]
    with pytest.raises(RuntimeError, match="transient"):
        dispatch_sync(make_inbound_message("boom", workflow="Kit"), registry=kit, raise_errors=True)


def test_suprsend_outage_fails_the_run_and_the_retry_sends_the_same_key_once():
    recorder = FollowupRecorder(fail_next=[503])
    payload = make_inbound_message("YES", workflow="Kit")
    first = dispatch_sync(payload, registry=kit, followup=recorder)
    outcome = first.get("kit_confirm")
    assert outcome.status == "failed" and isinstance(outcome.exception, FollowupUnavailable) and outcome.will_retry
    again = dispatch_sync(payload, registry=kit, followup=recorder)
    assert again.get("kit_confirm").status == "ran"
    third = dispatch_sync(payload, registry=kit, followup=recorder)  # a redelivery: same key, SuprSend drops it
    assert third.get("kit_confirm").followups == ()
    keys = {body["$idempotency_key"] for body in recorder.requests}
    assert len(recorder.requests) == 3 and len(keys) == 1 and len(recorder.events_named("kit_confirmed")) == 1


def test_conversation_state_persists_between_calls_and_unmatched_states_are_skipped(tmp_path):
    run = SyncDispatcher(kit, isolated_settings(data_dir=str(tmp_path)))
    first = run(make_inbound_message("hi", workflow="KitSurvey"))
    assert {o.handler.rsplit(".", 1)[1]: o.status for o in first} == {"kit_survey_start": "ran",
                                                                       "kit_survey_size": "skipped"}
    second = run(make_inbound_message("xl", workflow="KitSurvey"))
    assert {o.handler.rsplit(".", 1)[1]: o.status for o in second} == {"kit_survey_start": "skipped",
                                                                        "kit_survey_size": "ran"}
    size = second.followup("kit_size")
    assert size.bulk and size.properties == {"size": "xl"} and run.followups == [size]
    other_user = run(make_inbound_message("m", workflow="KitSurvey", phone="+15550001111"))
    assert other_user.get("kit_survey_start").status == "ran"  # state is per user


def test_timeline_echoes_keywords_and_handler_selection(tmp_path):
    settings = isolated_settings({"SUPRHOOK_OWN_NUMBERS": "+14444444444"}, data_dir=str(tmp_path))
    nid = "01J00000000000000000000000"
    run = SyncDispatcher(kit, settings)
    run(make_status_event("delivered", workflow="Kit", nid=nid, at=datetime(2025, 1, 1, tzinfo=timezone.utc)))
    seen = run(make_status_event("seen", workflow="Kit", nid=nid, at=datetime(2025, 1, 1, 0, 1, tzinfo=timezone.utc)))
    assert seen.event.timeline.current == "seen"
    assert [e.status for e in seen.event.timeline.history] == ["delivered", "seen"]
    echo = run(make_inbound_message("yes", workflow="Kit", phone="+14444444444"))
    assert echo.echo and list(echo) == []
    assert run(make_inbound_message("yes", workflow="Kit"), handlers=["kit_boom"]).handlers == []
    stop = dispatch_sync(make_inbound_message("STOP", workflow="Kit"), registry=keyword_kit)
    assert stop.handlers == ["suprhook.keywords.stop"]
    assert stop.followup("unsubscribe_requested").properties["keyword"] == "STOP"


# -- the plugin's fixtures, in this process --------------------------------------------------------------


@pytest.fixture
def suprhook_registry():
    return kit  # the plugin's fixtures take handlers from here


def test_fixtures_post_over_the_real_receiver_and_drain_runs_the_handlers(suprhook_client, followup_recorder,
                                                                         make_inbound_message, make_status_event):
    status = make_status_event("delivered", vendor="vonage", workflow="Kit")
    accepted = suprhook_client.post_webhook(status)
    assert accepted.status_code == 202 and accepted.json["status"] == "accepted"
    assert suprhook_client.post_webhook(status).json["status"] == "duplicate"
    reply = make_inbound_message("Yes", vendor="infobip", workflow="Kit", in_reply_to=status)
    assert suprhook_client.post_webhook(reply).status_code == 202
    assert suprhook_client.post_webhook({"channel": "whatsapp"}).status_code == 400
    outcomes = suprhook_client.drain()
    assert sorted((o.handler.rsplit(".", 1)[1], o.status) for o in outcomes) == [("kit_confirm", "ran"),
                                                                                ("kit_status", "ran")]
    assert followup_recorder.events_named("kit_confirmed")[0].properties["nid"] == status["reference"]["supr_nid"]
    assert suprhook_client.drain() == []  # nothing left on the broker


def test_every_vendor_sample_is_accepted_by_the_receiver(suprhook_client):
    for vendor in sorted(VENDOR_SAMPLES):
        for payload in (make_status_event("failed", vendor=vendor, workflow="Other"),
                        make_inbound_message("hello", vendor=vendor, workflow="Other")):
            response = suprhook_client.post_webhook(payload)
            assert response.status_code == 202, (vendor, response.json)


# -- the entry point, in a fresh pytest process -------------------------------------------------------


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("suprhook") == "suprhook.receiver.pytest_plugin"


def test_a_fresh_pytest_process_gets_the_fixtures_from_the_entry_point(tmp_path):
    """A user's project: one test file, no conftest, nothing passed with -p."""
    (tmp_path / "shop_hooks.py").write_text(textwrap.dedent('''
        from suprhook.handlers import on

        @on.reply(r"(?i)^yes", workflow="Shop")
        def thanks(event, followup):
            followup.track_event(event.distinct_id, "thanked", {"to": event.message.reply_to_nid})
    '''))
    (tmp_path / "test_shop.py").write_text(textwrap.dedent('''
        import shop_hooks  # noqa: F401
        from suprhook.receiver.pytest_plugin import make_inbound_message

        def test_yes_thanks(dispatch_sync):
            outcomes = dispatch_sync(make_inbound_message("YES", vendor="twilio", workflow="Shop"))
            assert outcomes.followup("thanked").distinct_id == "user@example.com"

        def test_client(suprhook_client, make_status_event):
            assert suprhook_client.post_webhook(make_status_event(vendor="meta")).status_code == 202
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_", "PYTEST_"))}
    env.update(PYTHONPATH=str(tmp_path), PYTEST_DISABLE_PLUGIN_AUTOLOAD="")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    without = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:suprhook",
                              "test_shop.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert without.returncode == 1 and "fixture 'dispatch_sync' not found" in without.stdout


def test_a_users_pytest_run_does_not_show_kombus_noload_deprecation(tmp_path):
    """kombu's SQLAlchemy models (the embedded broker behind suprhook_client) warn on SQLAlchemy 2.1; setup.cfg
    hides that from our suite only, so the plugin hides it from the user's: even with `filterwarnings = error`."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    (tmp_path / "test_drain.py").write_text(textwrap.dedent('''
        def test_post_and_drain(suprhook_client, make_status_event):
            assert suprhook_client.post_webhook(make_status_event()).status_code == 202
            suprhook_client.drain()
    '''))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUPRHOOK_", "CELERY_", "PYTEST_")) and k != "PYTHONWARNINGS"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_drain.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "noload" not in run.stdout + run.stderr
    assert "SADeprecationWarning" not in run.stdout + run.stderr
