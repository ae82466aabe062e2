"""Worker entry point: `celery -A suprhook.celery_worker worker` (what `suprhook worker` runs)."""
from .handlers import worker_app

app = worker_app()
