"""cpm: Customer Program Management for utility DR/DER programs."""

from .celery import app as celery_app

__all__ = ["celery_app"]
