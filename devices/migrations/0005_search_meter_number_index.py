"""Index for the CSR search by the start of a meter number (case-insensitive prefix, as 0004 for the city)."""

from django.db import migrations

from cpm.base.migrations_util import postgres_only


class Migration(migrations.Migration):
    dependencies = [("devices", "0004_search_city_index")]
    operations = [
        postgres_only(
            "CREATE INDEX IF NOT EXISTS servicepoint_meter_number_upper_idx "
            "ON devices_servicepoint (UPPER(meter_number::text) text_pattern_ops)",
            "DROP INDEX IF EXISTS servicepoint_meter_number_upper_idx"),
    ]
