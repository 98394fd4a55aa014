"""Hooks of the enrollments app for apps to its right (events, settlement).

``enrollment_ended(sender=Enrollment, enrollment_id, program_id, status, end_date, reason_code)`` is sent after the
transaction that ended the enrollment commits (unenrolled, rejected, cancelled, or its account closed). Events use
it to release reservations of the enrollment's devices from ``end_date`` on. ``end_date`` is a local date (the
first day no longer enrolled).

``subscription_ended(sender=ProgramSubscription, subscription_id, enrollment_id, device_id, end_date, reason_code)``
is sent on commit when a single subscription ends while its enrollment continues (device replaced or removed).
"""

from django.dispatch import Signal

enrollment_ended = Signal()
subscription_ended = Signal()
