"""Celery app and thin tasks: load from the DB, call models_zoo, write back.

The only package where Django and the ML library meet. Start a worker with
``celery -A workers worker``.
"""

from workers.celery import app

__all__ = ["app"]
