"""Hooks of the devices app, for apps to its right (enrollments ends subscriptions when a device is removed).

``device_removed(sender=Device, device, installation, removed_on, now, actor)`` is sent inside the removing
transaction, so receivers' writes commit or roll back with the removal.
"""

from django.dispatch import Signal

device_removed = Signal()
