"""Worker entry point: `celery -A suprhook.celery_worker worker` (what `suprhook worker` runs)."""
from .compose import worker_app

app = worker_app()
