"""What runs in the receiver (web) process: dispatch of events to Celery, the Redis fast path, gunicorn hooks."""
