"""Hooks of the devices app, for apps to its right (enrollments ends subscriptions when a device is removed).

``device_removed(sender=Device, device, installation, removed_on, now, actor)`` is sent inside the removing
transaction, so receivers' writes commit or roll back with the removal.

``device_status_changed(sender=Device, device_id, from_status, to_status)`` is sent after the transaction that
changed the device's status commits (``device_set_status``); events release the reservations of a device gone
inactive or retired.
"""

from django.dispatch import Signal

device_removed = Signal()
device_status_changed = Signal()
