"""Celery workers: the app (``workers.celery_app``) and its thin tasks (``workers.tasks``)."""
