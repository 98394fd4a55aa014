"""Index for the CSR search by street address (case-insensitive prefix; see enrollments 0002)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("devices", "0001_initial")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS premise_address_upper_idx "
            "ON devices_premise (UPPER(address_line1::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS premise_address_upper_idx"),
    ]
