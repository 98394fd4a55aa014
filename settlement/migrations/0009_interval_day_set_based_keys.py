"""Set-based foreign keys on interval data (issue 20, item 3; ``cpm.base.setkeys``).

A load writes one ``settlement_intervalday`` row per service point, channel and day: 100,000 rows for a day of
100,000 meters, each referencing its service point, its device (usually none) and its load. The database checked
these with one deferred trigger per row and key at commit: 2.3 s of backend CPU for a load of 100,000 rows, more
than the binary COPY that wrote them (BENCHMARKS.md). It now checks each key once per INSERT or COPY statement over
all its rows (the statement's distinct keys looked up with the FOR KEY SHARE row lock a foreign key takes), so a
row whose service point, device or load does not exist is still refused and nothing of the statement is written.
Deleting a referenced row (or changing a referenced key) is refused while an interval day references it, as before;
Django's ``on_delete`` runs first (CASCADE for the service point and the device, SET NULL for the load).

PostgreSQL: the table is partitioned (migration 0008); the statement trigger is on the partitioned table and sees
the rows routed to every partition (the loaders and the ORM write through it; moving rows out of the DEFAULT
partition, ``settlement.meterdata.partitions``, writes rows already checked). SQLite: row-level triggers.
"""

import django.db.models.deletion
from django.db import migrations, models

from cpm.base.setkeys import SetKey, install_operation

TABLE = "settlement_intervalday"
KEYS = [
    SetKey("interval_day_service_point_fk", TABLE, ("service_point_id",), "devices_servicepoint"),
    SetKey("interval_day_device_fk", TABLE, ("device_id",), "devices_device"),
    SetKey("interval_day_load_fk", TABLE, ("load_id",), "settlement_meterdataload"),
]


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0004_search_city_index"),
        ("settlement", "0008_interval_day_partitioned"),
    ]

    operations = [
        migrations.AlterField(
            model_name="intervalday",
            name="device",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="interval_days",
                                    to="devices.device"),
        ),
        migrations.AlterField(
            model_name="intervalday",
            name="load",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                    to="settlement.meterdataload"),
        ),
        migrations.AlterField(
            model_name="intervalday",
            name="service_point",
            field=models.ForeignKey(db_constraint=False, db_index=False,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="interval_days",
                                    to="devices.servicepoint"),
        ),
        # Last: on SQLite the AlterFields above rebuild the table, which drops its triggers.
        install_operation(KEYS),
    ]
