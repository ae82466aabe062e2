"""Handlers `suprhook dev` loads when SUPRHOOK_HANDLERS is unset. Copy this file to start your own."""
from handlers import on


@on(event_type="status")
def record_status(event, logger):
    """Every delivery status: store it in your database here."""
    logger.info("notification %s (%s, %s) is now %s at %s", event.reference.supr_nid,
                event.channel, event.workflow_name, event.status, event.timestamp)


@on(channel="whatsapp", event_type="inbound_message")
def reply_received(event, logger):
    """Every WhatsApp reply: `event.message.text` is what the user typed or tapped."""
    logger.info("%s replied %r to notification %s", event.channel_value, event.message.text,
                event.reference.supr_nid)
