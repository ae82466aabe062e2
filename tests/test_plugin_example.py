"""The pytest plugin as a user meets it: this file imports nothing but the plugin and an example handler
module; every fixture (dispatch_sync, suprhook_client, followup_recorder, ...) comes from the `pytest11`
entry point. README "Testing your handlers" shows the first test."""
import examples.order_confirmation  # noqa: F401  (registers the example's handlers on suprhook.on)
from suprhook import make_inbound_message, make_status_event


def test_a_yes_reply_confirms_the_order(dispatch_sync):
    outcomes = dispatch_sync(make_inbound_message("YES", workflow="Order Placed"))
    assert outcomes.followup("order_confirmed").distinct_id == "user@example.com"


def test_the_confirm_button_on_any_vendor_confirms_the_order_it_answers(dispatch_sync):
    order = make_status_event("delivered", vendor="meta", workflow="Order Placed")
    reply = make_inbound_message("Yes, confirm", vendor="meta", button="CONFIRM", in_reply_to=order,
                                 workflow="Order Placed", distinct_id="cust-42")
    sent = dispatch_sync(reply, handlers=["confirm_order"]).followup("order_confirmed")
    assert (sent.distinct_id, sent.properties) == ("cust-42", {"order_notification": order["reference"]["supr_nid"]})
    assert sent.idempotency_key.startswith("suprhook-d1-")  # a retry would send the same key


def test_no_cancels_and_an_unrelated_workflow_does_nothing(dispatch_sync, followup_recorder):
    cancelled = dispatch_sync(make_inbound_message("no thanks", vendor="twilio", workflow="Order Placed"))
    assert cancelled.get("cancel_order").status == "ran"
    assert cancelled.followup("order_cancelled").distinct_id == "user@example.com"
    other = dispatch_sync(make_inbound_message("YES", workflow="Newsletter"))
    assert "examples.order_confirmation.confirm_order" not in other.handlers
    assert [f.event_name for f in followup_recorder.followups] == ["order_cancelled"]


def test_suprsend_down_means_the_handler_fails_and_will_be_retried(dispatch_sync, followup_recorder):
    followup_recorder.fail_next = [503]
    outcome = dispatch_sync(make_inbound_message("y", workflow="Order Placed")).get("confirm_order")
    assert outcome.status == "failed" and outcome.will_retry and "503" in str(outcome.exception)


def test_statuses_are_recorded_through_the_real_receiver(suprhook_client, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the example writes var/orders.sqlite3 under the working directory
    order = make_status_event("seen", vendor="kaleyra", workflow="Order Placed")
    assert suprhook_client.post_webhook(order).status_code == 202
    assert suprhook_client.post_webhook(make_inbound_message("yes", workflow="Order Placed",
                                                             in_reply_to=order)).status_code == 202
    outcomes = suprhook_client.drain()
    assert outcomes.get("record_delivery").status == "ran"
    assert outcomes.followup("order_confirmed").properties["order_notification"] == order["reference"]["supr_nid"]
    rows = examples.order_confirmation._db().execute("SELECT supr_nid, status FROM deliveries").fetchall()
    assert rows == [(order["reference"]["supr_nid"], "seen")]
    assert (tmp_path / "var" / "orders.sqlite3").exists()
