"""No device (or device-less service point) in two overlapping events, refused by PostgreSQL set-based
(``cpm.base.setexclusion``, events migration 0011): a bulk write with one clash is refused whole, naming the
constraint; cancelled rows and back-to-back windows do not clash; an update that re-opens, moves or re-keys a live
row is checked, a status-only update is not; two writers of one device serialize on the device row; REPEATABLE READ
is refused."""

import datetime as dt

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from cpm.base.bulk import insert_rows
from events.choices import ParticipationStatus as PS
from events.models import Participation
from tests.factories.enrollments import ProgramSubscriptionFactory, active_participant
from tests.factories.events import EventFactory, ParticipationFactory, la
from tests.factories.programs import ProgramFactory, SeasonFactory

pytestmark = pytest.mark.postgres
NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)
COLUMNS = ["event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id", "status", "start", "end",
           "created_at", "updated_at"]


def _two_programs(n=3, *, device=True):
    """``n`` participants of program a, each also subscribed (same device or service point) to program b; an event
    of each, b's overlapping a's by one hour."""
    a, b = ProgramFactory(code="ovl-a", allows_co_enrollment=True), ProgramFactory(code="ovl-b",
                                                                                  allows_co_enrollment=True)
    for p in (a, b):
        SeasonFactory(program=p)
    kwargs = {"last_seen_at": NOW} if device else False
    subs_a = [active_participant(program=a, device_kwargs=kwargs) for _ in range(n)]
    subs_b = [ProgramSubscriptionFactory(enrollment__program=b, enrollment__service_point=s.enrollment.service_point,
                                         device=s.device, exclusive=False) for s in subs_a]
    ev_a = EventFactory(program=a)  # 15:00-18:00 local
    ev_b = EventFactory(program=b, start=la(2026, 7, 15, 17), end=la(2026, 7, 15, 19))
    return ev_a, ev_b, subs_a, subs_b


def _row(event, sub, **over):
    row = {"event_id": event.pk, "subscription_id": sub.pk, "enrollment_id": sub.enrollment_id,
           "device_id": sub.device_id, "service_point_id": sub.enrollment.service_point_id, "status": PS.RESERVED,
           "start": event.start, "end": event.end, "created_at": NOW, "updated_at": NOW}
    row.update(over)
    return [row[c] for c in COLUMNS]


@pytest.mark.django_db
def test_a_copy_with_one_clash_is_refused_whole_naming_the_constraint():
    ev_a, ev_b, subs_a, subs_b = _two_programs()
    ParticipationFactory(event=ev_a, subscription=subs_a[1])
    with pytest.raises(IntegrityError, match="participation_device_no_overlap") as err, transaction.atomic():
        insert_rows(Participation, COLUMNS, [_row(ev_b, s) for s in subs_b])
    assert f"Key (device_id, [start, end))=({subs_a[1].device_id}, [" in str(err.value)
    assert Participation.objects.filter(event=ev_b).count() == 0
    # Without the clashing device the same statement is written.
    insert_rows(Participation, COLUMNS, [_row(ev_b, s) for s in (subs_b[0], subs_b[2])])
    assert Participation.objects.filter(event=ev_b).count() == 2


@pytest.mark.django_db
def test_two_rows_of_one_statement_clash_with_each_other():
    ev_a, ev_b, subs_a, subs_b = _two_programs(1)
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"), transaction.atomic():
        insert_rows(Participation, COLUMNS, [_row(ev_a, subs_a[0]), _row(ev_b, subs_b[0])])
    assert Participation.objects.count() == 0


@pytest.mark.django_db
def test_cancelled_rows_and_back_to_back_windows_do_not_clash():
    ev_a, ev_b, subs_a, subs_b = _two_programs(1)
    ParticipationFactory(event=ev_a, subscription=subs_a[0], status=PS.CANCELLED)
    ParticipationFactory(event=ev_b, subscription=subs_b[0])  # overlaps only a cancelled row
    ev_c = EventFactory(program=ev_a.program, start=ev_b.end, end=ev_b.end + dt.timedelta(hours=1))
    ParticipationFactory(event=ev_c, subscription=subs_a[0])  # [19:00, 20:00) after [17:00, 19:00)
    assert Participation.objects.exclude(status=PS.CANCELLED).count() == 2


@pytest.mark.django_db
def test_reopening_a_cancelled_row_into_a_clash_is_refused_and_a_status_change_is_not_checked():
    ev_a, ev_b, subs_a, subs_b = _two_programs(1)
    cancelled = ParticipationFactory(event=ev_a, subscription=subs_a[0], status=PS.CANCELLED)
    live = ParticipationFactory(event=ev_b, subscription=subs_b[0])
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"), transaction.atomic():
        Participation.objects.filter(pk=cancelled.pk).update(status=PS.RESERVED)
    Participation.objects.filter(pk=live.pk).update(status=PS.DISPATCHED)
    assert Participation.objects.get(pk=live.pk).status == PS.DISPATCHED
    assert Participation.objects.get(pk=cancelled.pk).status == PS.CANCELLED


@pytest.mark.django_db
def test_moving_or_rekeying_a_live_row_into_a_clash_is_refused():
    ev_a, ev_b, subs_a, subs_b = _two_programs(2)
    ParticipationFactory(event=ev_a, subscription=subs_a[0])  # 15:00-18:00
    early = ParticipationFactory(event=ev_b, subscription=subs_b[0], start=la(2026, 7, 15, 18),
                                 end=la(2026, 7, 15, 19))
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"), transaction.atomic():
        Participation.objects.filter(pk=early.pk).update(start=la(2026, 7, 15, 17))
    other = ParticipationFactory(event=ev_b, subscription=subs_b[1], start=la(2026, 7, 15, 18),
                                 end=la(2026, 7, 15, 19))
    Participation.objects.filter(pk=other.pk).update(end=la(2026, 7, 15, 20))  # no clash: moved
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"), transaction.atomic():
        Participation.objects.filter(pk=other.pk).update(device_id=subs_a[0].device_id, start=la(2026, 7, 15, 16))
    assert Participation.objects.get(pk=other.pk).device_id == subs_a[1].device_id


@pytest.mark.django_db
def test_device_less_participants_clash_on_their_service_point_only():
    ev_a, ev_b, subs_a, subs_b = _two_programs(1, device=False)
    ParticipationFactory(event=ev_a, subscription=subs_a[0])
    with pytest.raises(IntegrityError, match="participation_service_point_no_overlap"), transaction.atomic():
        ParticipationFactory(event=ev_b, subscription=subs_b[0])
    # A device participation at the same service point is another participant (the device's own rule).
    device_sub = active_participant(program=ProgramFactory(code="ovl-c", allows_co_enrollment=True),
                                    service_point=subs_a[0].enrollment.service_point,
                                    account=subs_a[0].enrollment.account, device_kwargs={"last_seen_at": NOW})
    ParticipationFactory(event=EventFactory(program=device_sub.enrollment.program, start=ev_b.start, end=ev_b.end),
                         subscription=device_sub)
    assert Participation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_device_serialize_and_the_second_is_refused(other_connection):
    ev_a, ev_b, subs_a, subs_b = _two_programs(1)
    other_connection.execute(
        "INSERT INTO events_participation (event_id, subscription_id, enrollment_id, device_id, service_point_id, "
        "status, start, \"end\", created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        _row(ev_a, subs_a[0]))  # not committed: the other transaction holds the device row
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            ParticipationFactory(event=ev_b, subscription=subs_b[0])
    other_connection.commit()
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"), transaction.atomic():
        ParticipationFactory(event=ev_b, subscription=subs_b[0])
    assert list(Participation.objects.values_list("event_id", flat=True)) == [ev_a.pk]


@pytest.mark.django_db(transaction=True)
def test_repeatable_read_is_refused_for_a_write_that_needs_the_check(other_connection):
    ev_a, _, subs_a, _ = _two_programs(1)
    other_connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    with pytest.raises(psycopg.errors.InvalidTransactionState, match="not REPEATABLE READ"):
        other_connection.execute(
            "INSERT INTO events_participation (event_id, subscription_id, enrollment_id, device_id, "
            "service_point_id, status, start, \"end\", created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", _row(ev_a, subs_a[0]))
    other_connection.rollback()
    assert Participation.objects.count() == 0
