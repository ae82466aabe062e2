"""A handler that writes through its injected logger, for tests/test_logging.py (workflow "Logged" only)."""
from suprhook.handlers import on


@on(workflow="Logged")
def logged(event, logger):
    logger.info("handled %s", event.event_id)


@on(workflow="Printed", max_retries=0)
def printed(event):
    """Writes to stdout and stderr itself, then raises (a traceback): tests/test_logging.py checks that even
    these lines of a JSON worker are JSON."""
    import sys

    print(f"printed to stdout {event.event_id}")
    print(f"printed to stderr {event.event_id}", file=sys.stderr)
    raise RuntimeError(f"raised by the handler {event.event_id}")
