"""Hooks of the programs app for apps to its right (enrollments).

``program_closed(sender=Program, program, closed_on, now, actor)`` is sent inside the closing transaction, so the
receivers' writes (enrollments end ``closed_on``, the program's local date) commit or roll back with the closing.
"""

from django.dispatch import Signal

program_closed = Signal()
