"""A handler that writes through its injected logger, for tests/test_logging.py (workflow "Logged" only)."""
from handlers import on


@on(workflow="Logged")
def logged(event, logger):
    logger.info("handled %s", event.event_id)
