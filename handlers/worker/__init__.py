"""What runs only in the Celery worker: handler tasks, leases, recovery sweep, pool-process SIGTERM, worker metrics."""
