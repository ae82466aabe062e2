"""Handlers for the console's browser test (tests/test_console_browser.py), run by `suprhook dev`'s worker.

`notify_crm` fails while $SUPRHOOK_PROBE_DIR/crm-down exists (max_retries=0: the first failure is dead), so a
test can make an event fail, then "fix the CRM" and replay it from the console."""
import os
from pathlib import Path

from suprhook import on

PROBE_DIR = Path(os.environ.get("SUPRHOOK_PROBE_DIR", "var/probe"))


@on(event_type="status", status=("failed", "undelivered"), max_retries=0)
def notify_crm(event, logger):
    if (PROBE_DIR / "crm-down").exists():
        raise RuntimeError("CRM unreachable: connection refused (crm.internal:443)")
    logger.info("CRM told that %s failed", event.reference.supr_nid)


@on()
def audit(event):
    """Succeeds for every event."""


@on(event_type="inbound_message", text=r"(?i)^\s*(yes|no)\b")
def confirm(event, match):
    """Succeeds for YES/NO replies."""
