"""`celery -A celery_worker worker` from a clone of this repository: the same app as
`celery -A suprhook.celery_worker worker` (what `suprhook worker` runs)."""
from suprhook.celery_worker import app

__all__ = ["app"]
