"""`gunicorn wsgi:app` from a clone of this repository: the same app as `gunicorn suprhook.wsgi:app`."""
from suprhook.wsgi import app

__all__ = ["app"]
