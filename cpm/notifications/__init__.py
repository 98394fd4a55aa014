"""Customer notifications: messages to customers about events and enrollments, as records.

A feature on top of the apps (``programs < devices < enrollments < events < settlement < notifications``): it reads
their records and calls their services; none of them imports it. The notifications tick (Celery beat,
``notifications.tick``) reads due work from the database (reserved events, cancellations, opt-outs, enrollment
decisions, approved settlements), plans one ``Message`` per customer, subject and kind idempotently, and sends the
due ones in job chunks on the workers.
"""
