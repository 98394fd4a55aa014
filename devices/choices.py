"""Statuses of the devices app, with the allowed transitions."""

from django.db import models

from programs.choices import CustomerClass, DeviceOwnership, DeviceType

__all__ = ["CustomerClass", "DeviceOwnership", "DeviceStatus", "DeviceType", "DEVICE_TRANSITIONS"]


class DeviceStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    RETIRED = "retired", "Retired"


DEVICE_TRANSITIONS: dict[str, frozenset[str]] = {
    DeviceStatus.REGISTERED: frozenset({DeviceStatus.ACTIVE, DeviceStatus.RETIRED}),
    DeviceStatus.ACTIVE: frozenset({DeviceStatus.INACTIVE, DeviceStatus.RETIRED}),
    DeviceStatus.INACTIVE: frozenset({DeviceStatus.ACTIVE, DeviceStatus.RETIRED}),
    DeviceStatus.RETIRED: frozenset(),
}
