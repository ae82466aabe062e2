"""Worker entry point: `celery -A celery_worker worker` (or `suprhook worker`)."""
from handlers import worker_app

app = worker_app()
