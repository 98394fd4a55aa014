"""Index for the CSR search by city (case-insensitive prefix, as 0002 for the street address)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("devices", "0003_drop_simple_history")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS premise_city_upper_idx "
            "ON devices_premise (UPPER(city::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS premise_city_upper_idx"),
    ]
