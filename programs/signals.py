"""Hooks of the programs app for apps to its right (enrollments).

``program_closed(sender=Program, program, closed_on, now, actor)`` is sent inside the closing transaction, so the
receivers' writes (enrollments end ``closed_on``, the program's local date) commit or roll back with the closing.

``program_changed(sender=Program, program, change, now, actor)``: a program's fields were written by
``program_create`` (``change`` "created"), ``program_update`` ("updated", only when a field changed) or
``program_delete`` ("deleted", sent before the row goes, so receivers can still read it); inside the writing
transaction (received by the OpenADR 3 VTN, which notifies its subscribers after the commit).

``mutual_exclusion_creating(sender=MutualExclusion, program_a, program_b, on, now, actor)`` is sent by
``mutual_exclusion_create`` before the pair is stored: a receiver refuses it by raising a ``ConflictError`` (the
enrollments app, while a service point or device is in both programs at overlapping dates from local day ``on``).

``incentive_rule_changing(sender=IncentiveRule, rule, uses)`` is sent by ``incentive_rule_create`` (``rule`` not
saved yet), ``incentive_rule_update`` (when a field other than the description changes) and
``incentive_rule_delete`` before the write, the program row locked: ``uses`` are the ``(kind, season id)`` pairs
the rule prices as stored and as it would be. A receiver refuses the
change by raising a ``ConflictError`` (the settlement app, once a settlement has been priced with the rule: a
recalculation would reprice it).
"""

from django.dispatch import Signal

program_closed = Signal()
program_changed = Signal()
mutual_exclusion_creating = Signal()
incentive_rule_changing = Signal()
