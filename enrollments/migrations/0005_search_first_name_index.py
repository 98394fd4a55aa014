"""Index for the CSR search by first name (case-insensitive prefix, as 0002 for the last name)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("enrollments", "0004_drop_simple_history")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS customer_first_name_upper_idx "
            "ON enrollments_customer (UPPER(first_name::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS customer_first_name_upper_idx"),
    ]
