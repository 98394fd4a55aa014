"""One index per participation key, by (key, end) (issue 20).

A participation had two indexes per key: (device, start) for a device's history, and 0011's partial (device, end)
of the live rows that the no-overlap check probes (the same pair for the service point). One (key, end) index of
every row serves both: the probe reads the rows of the key that end after the new row starts (the current and
future ones, cancelled ones filtered on the row), a history reads the key's rows whatever their end. A
reservation of 1,000,000 devices writes 970,000 participations: one index of 970,000 entries fewer to maintain
(BENCHMARKS.md). The triggers of 0011 are unchanged: their probe never depended on the index being partial.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0004_search_city_index'),
        ('enrollments', '0005_search_first_name_index'),
        ('events', '0011_set_based_no_overlap'),
    ]

    operations = [
        # The new indexes first: no moment without an index on either key.
        migrations.AddIndex(
            model_name='participation',
            index=models.Index(fields=['device', 'end'], name='participation_device_end_idx'),
        ),
        migrations.AddIndex(
            model_name='participation',
            index=models.Index(fields=['service_point', 'end'], name='participation_sp_end_idx'),
        ),
        migrations.RemoveIndex(
            model_name='participation',
            name='participation_device_start_idx',
        ),
        migrations.RemoveIndex(
            model_name='participation',
            name='participation_sp_start_idx',
        ),
        migrations.RemoveIndex(
            model_name='participation',
            name='participation_device_live_idx',
        ),
        migrations.RemoveIndex(
            model_name='participation',
            name='participation_sp_live_idx',
        ),
    ]
