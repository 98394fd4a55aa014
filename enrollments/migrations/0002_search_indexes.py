"""Indexes for the CSR search: case-insensitive prefix search on names (``istartswith`` compiles to
``UPPER(col::text) LIKE UPPER('x%')`` on PostgreSQL, which a text_pattern_ops index on the same expression serves)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("enrollments", "0001_initial")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS customer_last_name_upper_idx "
            "ON enrollments_customer (UPPER(last_name::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS customer_last_name_upper_idx"),
    ]
