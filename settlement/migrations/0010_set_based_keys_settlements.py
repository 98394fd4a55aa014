"""Set-based foreign keys on the settlement tables (issue 20, item 2; ``cpm.base.setkeys``).

An event settlement of N participations writes N event settlements (8 keys each); a season-end customer settlement
of N accounts writes N customer settlements (5 keys) and about 2N settlement lines (7 keys). Each key was a
``DEFERRABLE INITIALLY DEFERRED`` foreign key: one trigger per row and key at commit, 0.23 s of each event
settlement chunk of 5,000 service points and 0.38 s of each customer settlement chunk of 5,000 accounts
(BENCHMARKS.md). The database now checks each key once per INSERT or COPY statement over all its rows (the
statement's distinct keys looked up with the FOR KEY SHARE row lock a foreign key takes), under the old constraints'
meaning: a row whose event, participation, account, ... does not exist is refused and nothing of the statement is
written; deleting a referenced row (or changing a referenced key) is refused while a row references it (Django's
``on_delete`` PROTECT / SET NULL runs first, as before).

One key stays a deferred foreign key: a settlement line's customer settlement. A customer settlement chunk writes
its lines before the new settlements they belong to (the settlements are written once, with their totals, ids
reserved from the sequence), so that key can only be checked at commit.
On SQLite the same keys are row-level triggers on the referencing side.
"""
import django.db.models.deletion
from django.db import migrations, models

from cpm.base.setkeys import SetKey, install_operation

ES, CS, SL = "settlement_eventsettlement", "settlement_customersettlement", "settlement_settlementline"
KEYS = [
    *(SetKey(f"event_settlement_{col}_fk", ES, (f"{col}_id",), ref) for col, ref in (
        ("batch", "settlement_settlementbatch"), ("event", "events_event"), ("participation", "events_participation"),
        ("program", "programs_program"), ("enrollment", "enrollments_enrollment"), ("account", "enrollments_account"),
        ("service_point", "devices_servicepoint"), ("device", "devices_device"))),
    *(SetKey(f"customer_settlement_{col}_fk", CS, (f"{col}_id",), ref) for col, ref in (
        ("account", "enrollments_account"), ("program", "programs_program"), ("season", "programs_season"),
        ("batch", "settlement_settlementbatch"), ("export_batch", "settlement_billcreditexport"))),
    *(SetKey(f"settlement_line_{col}_fk", SL, (f"{col}_id",), ref) for col, ref in (
        ("account", "enrollments_account"), ("program", "programs_program"), ("enrollment", "enrollments_enrollment"),
        ("service_point", "devices_servicepoint"), ("event_settlement", ES), ("reverses", SL))),
]


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0004_search_city_index'),
        ('enrollments', '0005_search_first_name_index'),
        ('events', '0010_set_based_keys'),
        ('programs', '0007_aggregator_reported_measurement'),
        ('settlement', '0009_interval_day_set_based_keys'),
    ]

    operations = [
        migrations.AlterField(
            model_name='customersettlement',
            name='account',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='customer_settlements', to='enrollments.account'),
        ),
        migrations.AlterField(
            model_name='customersettlement',
            name='batch',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='settlement.settlementbatch'),
        ),
        migrations.AlterField(
            model_name='customersettlement',
            name='export_batch',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='customer_settlements', to='settlement.billcreditexport'),
        ),
        migrations.AlterField(
            model_name='customersettlement',
            name='program',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='programs.program'),
        ),
        migrations.AlterField(
            model_name='customersettlement',
            name='season',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='programs.season'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='account',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='event_settlements', to='enrollments.account'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='batch',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='settlement.settlementbatch'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='device',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='devices.device'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='enrollment',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='enrollments.enrollment'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='event',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='settlements', to='events.event'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='participation',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='settlement', to='events.participation'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='program',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='programs.program'),
        ),
        migrations.AlterField(
            model_name='eventsettlement',
            name='service_point',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='devices.servicepoint'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='account',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='enrollments.account'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='enrollment',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='enrollments.enrollment'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='event_settlement',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='lines', to='settlement.eventsettlement'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='program',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='programs.program'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='reverses',
            field=models.OneToOneField(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='reversed_by', to='settlement.settlementline'),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='service_point',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='devices.servicepoint'),
        ),
        # Last: on SQLite the AlterFields above rebuild the tables, which drops their triggers.
        install_operation(KEYS),
    ]
