"""The set-based foreign keys of interval data (``cpm.base.setkeys``, settlement migration 0009): the database
refuses an interval day whose service point, device or load does not exist, checked once per statement over all
its rows (an INSERT of many rows or a load's binary COPY), on both databases, and nothing of the statement is
written; a referenced row cannot be deleted underneath; Django's on_delete (CASCADE, SET NULL) still runs first."""

import datetime as dt

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction

from devices.models import Device, ServicePoint
from settlement.meterdata import intervals
from settlement.meterdata.loaders import interval_days_insert, meter_csv_load
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, ServicePointFactory
from tests.factories.settlement_meter import MeterDataLoadFactory
from tests.keys import missing_pk

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 14)
RECEIVED = dt.datetime(2026, 5, 15, 6, 0, tzinfo=dt.UTC)


def _day(sp_id, *, day=DAY, device_id=None, load_id=None):
    return IntervalDay(service_point_id=sp_id, device_id=device_id, load_id=load_id, day=day, interval_minutes=60,
                       values=intervals.encode(np.ones(24)), received_at=RECEIVED)



@pytest.mark.parametrize("column, model, name", [("service_point_id", ServicePoint, "interval_day_service_point_fk"),
                                                 ("device_id", Device, "interval_day_device_fk"),
                                                 ("load_id", MeterDataLoad, "interval_day_load_fk")])
def test_an_insert_of_many_days_with_one_missing_key_is_refused_whole(column, model, name):
    sps = ServicePointFactory.create_batch(3)
    device, load = DeviceFactory(), MeterDataLoadFactory()
    rows = [_day(sp.pk, day=DAY + dt.timedelta(days=i), device_id=device.pk, load_id=load.pk)
            for i, sp in enumerate(sps)]
    setattr(rows[1], column, missing_pk(model))
    with pytest.raises(IntegrityError, match=name), transaction.atomic():
        IntervalDay.objects.bulk_create(rows)
    assert IntervalDay.objects.count() == 0
    setattr(rows[1], column, getattr(rows[0], column))  # the key that exists: all three are written
    IntervalDay.objects.bulk_create(rows)
    assert IntervalDay.objects.filter(device=device, load=load).count() == 3


def test_null_device_and_load_are_not_checked_and_an_update_to_a_missing_key_is_refused():
    sp = ServicePointFactory()
    IntervalDay.objects.bulk_create([_day(sp.pk)])
    row = IntervalDay.objects.get(service_point=sp)
    assert row.device_id is None and row.load_id is None
    with pytest.raises(IntegrityError, match="interval_day_service_point_fk"), transaction.atomic():
        IntervalDay.objects.filter(pk=row.pk).update(service_point_id=missing_pk(ServicePoint))
    with pytest.raises(IntegrityError, match="interval_day_load_fk"), transaction.atomic():
        IntervalDay.objects.filter(pk=row.pk).update(load_id=missing_pk(MeterDataLoad))
    load = MeterDataLoadFactory()
    IntervalDay.objects.filter(pk=row.pk).update(load_id=load.pk)
    assert IntervalDay.objects.get(pk=row.pk).load_id == load.pk


@pytest.mark.postgres
def test_a_loads_binary_copy_with_a_missing_service_point_writes_nothing():
    """The check runs on the COPY statement the loaders write with (``interval_days_insert``), at its end."""
    sp, load = ServicePointFactory(), MeterDataLoadFactory()
    args = {"dev": np.zeros(2, np.int64), "ch": np.zeros(2, np.int8), "minutes": 60, "values": np.ones((2, 24)),
            "version": np.ones(2, np.int64), "load": load,
            "day": np.full(2, (DAY - dt.date(1970, 1, 1)).days, np.int64)}
    with pytest.raises(IntegrityError, match="interval_day_service_point_fk"), transaction.atomic():
        interval_days_insert(sp=np.array([sp.pk, missing_pk(ServicePoint)]), **args)
    assert IntervalDay.objects.count() == 0
    interval_days_insert(sp=np.array([sp.pk, ServicePointFactory().pk]), **args)
    assert IntervalDay.objects.filter(load=load).count() == 2


def test_on_delete_still_runs_first(now):
    """Deleting a load sets its days' load to NULL; deleting a service point or a device deletes its days."""
    sp = ServicePointFactory(service_point_id="SP-1")
    load = meter_csv_load(content=b"service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1.5\n", now=now,
                          file_name="r.csv", actor=TEST_ACTOR)
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 0 rejected"
    load.delete()
    assert list(IntervalDay.objects.values_list("service_point_id", "load_id")) == [(sp.pk, None)]
    device = DeviceFactory()
    IntervalDay.objects.bulk_create([_day(sp.pk, day=DAY + dt.timedelta(days=1), device_id=device.pk)])
    device.delete()
    assert IntervalDay.objects.filter(service_point=sp).count() == 1
    sp.delete()
    assert IntervalDay.objects.count() == 0


@pytest.mark.postgres
def test_a_referenced_row_cannot_be_deleted_underneath():
    """A delete that bypasses Django's on_delete is refused by PostgreSQL while an interval day references the row
    (on SQLite the referenced side is Django's on_delete only)."""
    sp, device, load = ServicePointFactory(), DeviceFactory(), MeterDataLoadFactory()
    IntervalDay.objects.bulk_create([_day(sp.pk, device_id=device.pk, load_id=load.pk)])
    for model, pk, name in ((ServicePoint, sp.pk, "interval_day_service_point_fk"),
                            (Device, device.pk, "interval_day_device_fk"),
                            (MeterDataLoad, load.pk, "interval_day_load_fk")):
        with pytest.raises(IntegrityError, match=name), transaction.atomic():
            model.objects.filter(pk=pk)._raw_delete(connection.alias)
        assert model.objects.filter(pk=pk).exists()
    IntervalDay.objects.all()._raw_delete(connection.alias)
    MeterDataLoad.objects.filter(pk=load.pk)._raw_delete(connection.alias)  # nothing references it now
    assert not MeterDataLoad.objects.filter(pk=load.pk).exists()
