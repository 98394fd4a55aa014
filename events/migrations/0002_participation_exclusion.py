"""PostgreSQL only: a device (or a device-less service point) cannot hold two overlapping participations that are
not cancelled, in any program (btree_gist exclusion constraints). Other databases rely on the service check under
row locks."""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """ALTER TABLE events_participation ADD CONSTRAINT participation_device_no_overlap
       EXCLUDE USING gist (device_id WITH =, tstzrange(start, "end", '[)') WITH &&)
       WHERE (device_id IS NOT NULL AND status <> 'cancelled')""",
    """ALTER TABLE events_participation ADD CONSTRAINT participation_service_point_no_overlap
       EXCLUDE USING gist (service_point_id WITH =, tstzrange(start, "end", '[)') WITH &&)
       WHERE (device_id IS NULL AND status <> 'cancelled')""",
]
DROP = [
    "ALTER TABLE events_participation DROP CONSTRAINT IF EXISTS participation_device_no_overlap",
    "ALTER TABLE events_participation DROP CONSTRAINT IF EXISTS participation_service_point_no_overlap",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
