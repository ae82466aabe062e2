"""Prometheus metrics and JSON logs, shared by the web process and the worker."""
