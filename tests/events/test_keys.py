"""The set-based foreign keys of the ledger and the participations (``cpm.base.setkeys``, events migration 0010):
the database refuses a row whose event, device, service point or (subscription, enrollment) does not exist, checked
once per statement over all its rows, on both databases; on PostgreSQL a referenced row cannot be deleted while a row
references it, and the check holds the FOR KEY SHARE lock a foreign key holds."""

import datetime as dt

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from cpm.base.bulk import insert_rows
from devices.models import Device, ServicePoint
from events.choices import ReservationDecision as D
from events.models import Event, Participation, Reservation
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory
from tests.factories.programs import ProgramFactory, SeasonFactory
from tests.keys import missing_pk

NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)
COLUMNS = ["event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id", "decision", "detail",
           "capacity_kw", "decided_at"]


def _setup(n=3):
    program = ProgramFactory(code="keys")
    SeasonFactory(program=program)
    subs = [active_participant(program=program, device_kwargs={"last_seen_at": NOW}) for _ in range(n)]
    return EventFactory(program=program), subs


def _row(event, sub, **over):
    row = {"event_id": event.pk, "subscription_id": sub.pk, "enrollment_id": sub.enrollment_id,
           "device_id": sub.device_id, "service_point_id": sub.enrollment.service_point_id, "decision": D.RESERVED,
           "detail": "", "capacity_kw": 1, "decided_at": NOW}
    row.update(over)
    return [row[c] for c in COLUMNS]



@pytest.mark.django_db
@pytest.mark.parametrize("column, model", [("event_id", Event), ("device_id", Device),
                                           ("service_point_id", ServicePoint)])
def test_a_bulk_insert_with_one_missing_key_is_refused_whole(column, model):
    event, subs = _setup()
    rows = [_row(event, s) for s in subs]
    rows[1][COLUMNS.index(column)] = missing_pk(model)
    with pytest.raises(IntegrityError, match=f"reservation_{column.removesuffix('_id')}_fk"), transaction.atomic():
        insert_rows(Reservation, COLUMNS, rows)
    assert Reservation.objects.count() == 0
    # The same rows with the key that exists are written, all of them in one statement.
    rows[1] = _row(event, subs[1])
    assert insert_rows(Reservation, COLUMNS, rows) == 3
    assert Reservation.objects.filter(event=event).count() == 3


@pytest.mark.django_db
def test_the_pair_key_refuses_an_enrollment_that_is_not_the_subscriptions():
    event, (a, b, _c) = _setup()
    with pytest.raises(IntegrityError, match="reservation_subscription_enrollment_fk"), transaction.atomic():
        insert_rows(Reservation, COLUMNS, [_row(event, a), _row(event, b, enrollment_id=a.enrollment_id)])
    with pytest.raises(IntegrityError, match="participation_subscription_enrollment_fk"), transaction.atomic():
        Participation.objects.create(event=event, subscription=a, enrollment=b.enrollment, device=a.device,
                                     service_point=a.enrollment.service_point, start=event.start, end=event.end)
    assert Reservation.objects.count() == 0 and Participation.objects.count() == 0


@pytest.mark.django_db
def test_a_null_device_is_not_checked_and_an_update_to_a_missing_device_is_refused():
    event, (a, _b, _c) = _setup()
    insert_rows(Reservation, COLUMNS, [_row(event, a, device_id=None)])
    row = Reservation.objects.get(event=event)
    assert row.device_id is None
    with pytest.raises(IntegrityError, match="reservation_device_fk"), transaction.atomic():
        Reservation.objects.filter(pk=row.pk).update(device_id=missing_pk(Device))
    Reservation.objects.filter(pk=row.pk).update(device_id=a.device_id)
    assert Reservation.objects.get(pk=row.pk).device_id == a.device_id


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_referenced_row_cannot_be_deleted_underneath():
    """Django's on_delete runs first (PROTECT here); a delete that bypasses it is refused by PostgreSQL (on SQLite
    the referenced side is Django's on_delete only)."""
    event, (a, _b, _c) = _setup()
    part = Participation.objects.create(event=event, subscription=a, enrollment=a.enrollment, device=a.device,
                                        service_point=a.enrollment.service_point, start=event.start, end=event.end)
    with pytest.raises(IntegrityError, match="participation_device_fk"), transaction.atomic():
        Device.objects.filter(pk=a.device_id)._raw_delete(connection.alias)
    with pytest.raises(IntegrityError, match="participation_event_fk"), transaction.atomic():
        Event.objects.filter(pk=event.pk)._raw_delete(connection.alias)
    assert Device.objects.filter(pk=a.device_id).exists() and Event.objects.filter(pk=event.pk).exists()
    # Once nothing references it, it goes.
    part.delete()
    Event.objects.filter(pk=event.pk)._raw_delete(connection.alias)
    assert not Event.objects.filter(pk=event.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_check_holds_the_referenced_rows_against_a_concurrent_delete(other_connection):
    """As a foreign key does: the inserting transaction holds FOR KEY SHARE locks on the rows it references, so
    another transaction's DELETE of the device waits (here: gives up after its lock timeout) until it ends."""
    event, (a, _b, _c) = _setup()
    other = other_connection
    with transaction.atomic():
        insert_rows(Reservation, COLUMNS, [_row(event, a)])
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SET lock_timeout = '300ms'")
            other.execute("DELETE FROM devices_device WHERE id = %s", [a.device_id])
        other.rollback()
    # Committed: the other transaction's delete now runs and is refused, the row being referenced.
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="reservation_device_fk"):
        other.execute("DELETE FROM devices_device WHERE id = %s", [a.device_id])
    other.rollback()
    assert Reservation.objects.filter(event=event, device_id=a.device_id).count() == 1
