"""Handlers `suprhook dev` loads when SUPRHOOK_HANDLERS is unset. Copy this file to start your own."""
from suprhook import on


@on(event_type="status")
def record_status(event, logger):
    """Every delivery status: store it in your database here."""
    logger.info("notification %s (%s, %s) is now %s at %s [vendor %s says %s -> %s]",
                event.reference.supr_nid, event.channel, event.workflow_name, event.status,
                event.timestamp, event.vendor.name, event.vendor.status, event.vendor.normalized_status)


@on(event_type="status", normalized_status=("failed", "undelivered"))
def alert_on_failure(event, logger):
    """Failures, whatever the vendor calls them, with the vendor's own error code."""
    logger.warning("notification %s to %s failed: %s %s", event.reference.supr_nid, event.channel_value,
                   event.vendor.error_code, event.vendor.error_message)


@on(channel="whatsapp", event_type="inbound_message")
def reply_received(event, logger):
    """Every WhatsApp reply: `event.message.text` is what the user typed or tapped."""
    logger.info("%s replied %r (%s) to notification %s", event.channel_value, event.message.text,
                event.message.type, event.message.reply_to_nid)
