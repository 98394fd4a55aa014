"""Search keys of customers' names for the CSR search without accents or case (``Customer.first_name_key`` /
``last_name_key``, ``enrollments.models.name_key``): the columns, the keys of the existing customers, then the
prefix indexes (built once the keys are in). The fill reads ``BATCH`` customers at a time by id (a utility-sized
table is never in memory at once) and sends their UPDATEs by id as one batch. Re-running it writes the same keys;
going back drops the columns."""

from django.db import migrations, models

from cpm.base.text import fold

BATCH = 2000
KEY_LENGTH = 255


def fill_name_keys(apps, schema_editor):
    customer = apps.get_model("enrollments", "Customer")
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    update = (f"UPDATE {quote(customer._meta.db_table)} SET {quote('first_name_key')} = %s, "
              f"{quote('last_name_key')} = %s WHERE {quote('id')} = %s")
    last = 0
    while True:
        rows = list(customer.objects.using(connection.alias).filter(pk__gt=last).order_by("pk")
                    .values_list("pk", "first_name", "last_name")[:BATCH])
        if not rows:
            return
        with connection.cursor() as cursor:
            cursor.executemany(update, [(fold(first or "")[:KEY_LENGTH], fold(last_name or "")[:KEY_LENGTH], pk)
                                        for pk, first, last_name in rows])
        last = rows[-1][0]


class Migration(migrations.Migration):

    dependencies = [
        ('enrollments', '0005_search_first_name_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='customer',
            name='first_name_key',
            field=models.CharField(blank=True, editable=False, help_text='first_name folded for search (no accents, case folded).', max_length=255),
        ),
        migrations.AddField(
            model_name='customer',
            name='last_name_key',
            field=models.CharField(blank=True, editable=False, help_text='last_name folded for search (no accents, case folded).', max_length=255),
        ),
        migrations.RunPython(fill_name_keys, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(fields=['last_name_key'], name='customer_last_name_key_idx', opclasses=['varchar_pattern_ops']),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(fields=['first_name_key'], name='customer_first_name_key_idx', opclasses=['varchar_pattern_ops']),
        ),
    ]
