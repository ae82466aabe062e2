"""Order confirmation over WhatsApp: record each delivery status, and "reply YES to confirm, NO to cancel".

Your SuprSend workflow "Order Placed" sends the order message; this module
- records every status of that notification in var/orders.sqlite3 (your database, in real life);
- turns a YES reply (typed, or the "CONFIRM" quick-reply button) into an `order_confirmed` event
  and a NO reply into `order_cancelled`, which your SuprSend workflows answer.
Run it: see "Two-way flows" in README.md.
"""
import sqlite3
from pathlib import Path

from suprhook import on

DB = Path("var/orders.sqlite3")


def _db() -> sqlite3.Connection:
    DB.parent.mkdir(exist_ok=True)
    db = sqlite3.connect(DB, timeout=10, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS deliveries (supr_nid TEXT, status TEXT, vendor_status TEXT,"
               " at TEXT, PRIMARY KEY (supr_nid, status))")
    return db


@on(event_type="status", workflow="Order Placed")
def record_delivery(event, logger):
    """One row per status of each order notification (idempotent: a retry rewrites the same row)."""
    with _db() as db:
        db.execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                   (event.reference.supr_nid, event.status, event.vendor.status,
                    event.timestamp.isoformat() if event.timestamp else None))
    logger.info("order notification %s: %s", event.reference.supr_nid, event.status)


@on.reply(r"(?i)^\s*(yes|y|confirm)\b", workflow="Order Placed")
@on.reply(button="CONFIRM", workflow="Order Placed")
def confirm_order(event, followup, logger):
    result = followup.track_event(event.distinct_id, "order_confirmed",
                                  {"order_notification": event.message.reply_to_nid})
    logger.info("%s confirmed -> order_confirmed %s", event.distinct_id, result)


@on.reply(r"(?i)^\s*(no|n|cancel)\b", workflow="Order Placed")
@on.reply(button="CANCEL", workflow="Order Placed")
def cancel_order(event, followup, logger):
    result = followup.track_event(event.distinct_id, "order_cancelled",
                                  {"order_notification": event.message.reply_to_nid})
    logger.info("%s cancelled -> order_cancelled %s", event.distinct_id, result)
