"""Index for the CSR search by the start of an account number (case-insensitive prefix, as 0002 for last names)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("enrollments", "0006_customer_name_keys")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS account_number_upper_idx "
            "ON enrollments_account (UPPER(account_number::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS account_number_upper_idx"),
    ]
