"""WSGI entry point: `gunicorn suprhook.wsgi:app`. Production mode unless SUPRHOOK_ENV says otherwise."""
import os

os.environ.setdefault("SUPRHOOK_ENV", "production")

from .receiver import create_app  # noqa: E402

app = create_app()
