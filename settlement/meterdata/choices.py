"""Choices of meter data."""

from django.db import models


class Channel(models.TextChoices):
    DELIVERED = "delivered", "Delivered (import from the grid)"
    RECEIVED = "received", "Received (export to the grid)"
