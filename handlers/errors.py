"""Exceptions users and the receiver act on."""


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says which setting and why."""


class EnqueueError(RuntimeError):
    """The event could not be put on the broker; the sender should retry (HTTP 503)."""


class InFlight(RuntimeError):
    """Another request is accepting the same event right now (HTTP 409, retry shortly)."""


class PermanentError(Exception):
    """Raise from a handler to fail its run without retrying (bad data, nothing to retry for)."""
