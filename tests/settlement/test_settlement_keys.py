"""The set-based foreign keys of the settlement tables (``cpm.base.setkeys``, settlement migration 0010): event
settlements (8 keys), customer settlements (5) and settlement lines (6 set-based, the customer settlement a deferred
foreign key). The database refuses a row whose referenced row does not exist, checked once per statement over all
its rows (the COPY of an event settlement chunk, a bulk insert of lines), and nothing of the statement is written; a
referenced row cannot be deleted underneath (PostgreSQL); Django's on_delete (PROTECT, SET NULL) still runs first."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from cpm.base import bulk
from enrollments.models import Account
from events.models import Participation
from programs.models import Program, Season
from settlement.choices import LineKind, PeriodKind
from settlement.models import CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory, EventSettlementFactory, ParticipationFactory
from tests.keys import missing_pk

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)



def _participations(n: int):
    program = ProgramFactory()
    event = EventFactory(program=program)
    return [ParticipationFactory(event=event, subscription=active_participant(program=program)) for _ in range(n)]


def _settlement_row(p: Participation) -> dict:
    """An event settlement as a chunk writes it (``bulk.insert_dicts``: COPY on PostgreSQL)."""
    return {"batch_id": None, "event_id": p.event_id, "participation_id": p.pk, "program_id": p.event.program_id,
            "enrollment_id": p.enrollment_id, "account_id": p.enrollment.account_id,
            "service_point_id": p.service_point_id, "device_id": p.device_id, "status": "calculated",
            "measurement_status": "ok", "method": "caiso-10-in-10", "kwh_avoided": Decimal("1.5"),
            "kw_drop_avg": Decimal("0.5"), "participation_fraction": Decimal(1), "opted_out": False,
            "amount": Decimal("1.88"), "posted_amount": Decimal(0), "revision": 1, "event_day": dt.date(2026, 7, 15),
            "inputs": bulk.RawJson("{}"), "components": bulk.RawJson("[]"), "explanation": "", "fingerprint": "f",
            "error": "", "approved_at": None, "calculated_at": NOW, "created_at": NOW, "updated_at": NOW}


@pytest.mark.parametrize("column, model, name", [
    ("participation_id", Participation, "event_settlement_participation_fk"),
    ("account_id", Account, "event_settlement_account_fk"),
    ("program_id", Program, "event_settlement_program_fk"),
    ("batch_id", SettlementBatch, "event_settlement_batch_fk"),
])
def test_a_chunk_of_event_settlements_with_one_missing_key_is_refused_whole(column, model, name):
    parts = _participations(3)
    rows = [_settlement_row(p) for p in parts]
    rows[1][column] = missing_pk(model)
    with pytest.raises(IntegrityError, match=name), transaction.atomic():
        bulk.insert_dicts(EventSettlement, rows)
    assert EventSettlement.objects.count() == 0
    rows[1] = _settlement_row(parts[1])
    bulk.insert_dicts(EventSettlement, rows)
    assert sorted(EventSettlement.objects.values_list("participation_id", flat=True)) == sorted(p.pk for p in parts)


def _line(es: EventSettlement, **kw) -> SettlementLine:
    return SettlementLine(**{"account_id": es.account_id, "program_id": es.program_id,
                             "enrollment_id": es.enrollment_id, "service_point_id": es.service_point_id,
                             "event_settlement": es, "kind": LineKind.PERFORMANCE_KWH, "line_code": "PERF",
                             "amount": Decimal("5.00"), "created_at": NOW, **kw})


def test_lines_with_a_missing_event_settlement_or_reversed_line_are_refused_and_a_reversal_is_written():
    es = EventSettlementFactory(participation=_participations(1)[0])
    with pytest.raises(IntegrityError, match="settlement_line_event_settlement_fk"), transaction.atomic():
        SettlementLine.objects.bulk_create([_line(es), _line(es, event_settlement_id=missing_pk(EventSettlement))])
    assert SettlementLine.objects.count() == 0
    line = SettlementLine.objects.bulk_create([_line(es)])[0]
    with pytest.raises(IntegrityError, match="settlement_line_reverses_fk"), transaction.atomic():
        SettlementLine.objects.bulk_create([_line(es, amount=Decimal("-5.00"), reverses_id=missing_pk(SettlementLine))])
    SettlementLine.objects.bulk_create([_line(es, amount=Decimal("-5.00"), reverses=line)])
    assert sorted(SettlementLine.objects.values_list("amount", flat=True)) == [Decimal("-5.00"), Decimal("5.00")]
    with pytest.raises(IntegrityError, match="settlement_line_enrollment_fk"), transaction.atomic():
        SettlementLine.objects.filter(pk=line.pk).update(enrollment_id=missing_pk(type(es.enrollment)))


def test_a_customer_settlement_with_a_missing_season_is_refused_and_its_lines_wait_for_commit():
    """The lines of a customer settlement chunk are written before the settlement they belong to (its id reserved):
    that key is checked at commit, the others when their statement ends."""
    es = EventSettlementFactory(participation=_participations(1)[0])
    common = {"account_id": es.account_id, "program_id": es.program_id, "period_kind": PeriodKind.SEASON_END,
              "period_start": dt.date(2026, 6, 1), "period_end": dt.date(2026, 10, 1), "created_at": NOW,
              "updated_at": NOW}
    with pytest.raises(IntegrityError, match="customer_settlement_season_fk"), transaction.atomic():
        CustomerSettlement.objects.create(season_id=missing_pk(Season), **common)
    pk = bulk.reserve_ids(CustomerSettlement, 1)[0]
    with transaction.atomic():
        SettlementLine.objects.bulk_create([_line(es, customer_settlement_id=pk)])  # before its settlement
        CustomerSettlement.objects.create(id=pk, **common)
    assert CustomerSettlement.objects.get(pk=pk).lines.count() == 1


def test_on_delete_still_runs_first():
    """PROTECT refuses deleting a participation with a settlement; deleting a batch sets its settlements' batch to
    NULL (SET NULL)."""
    p = _participations(1)[0]
    batch = SettlementBatch.objects.create(kind="event", event=p.event, program_id=p.event.program_id, created_at=NOW)
    es = EventSettlementFactory(participation=p, batch=batch)
    with pytest.raises(ProtectedError):
        p.delete()
    batch.delete()
    es.refresh_from_db()
    assert es.batch_id is None


@pytest.mark.postgres
def test_a_referenced_row_cannot_be_deleted_underneath():
    """A delete that bypasses Django's on_delete is refused by PostgreSQL while a settlement references the row."""
    es = EventSettlementFactory(participation=_participations(1)[0])
    line = SettlementLine.objects.bulk_create([_line(es)])[0]
    for model, pk, name in ((Participation, es.participation_id, "event_settlement_participation_fk"),
                            (EventSettlement, es.pk, "settlement_line_event_settlement_fk"),
                            (Account, es.account_id, "event_settlement_account_fk")):
        with pytest.raises(IntegrityError, match=name), transaction.atomic():
            model.objects.filter(pk=pk)._raw_delete(connection.alias)
        assert model.objects.filter(pk=pk).exists()
    SettlementLine.objects.filter(pk=line.pk)._raw_delete(connection.alias)
    EventSettlement.objects.filter(pk=es.pk)._raw_delete(connection.alias)  # nothing references it now
    assert not EventSettlement.objects.filter(pk=es.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_chunk_counts_itself_on_its_batch_while_other_chunks_hold_their_keys_to_it(other_connection):
    """Chunks on two workers each write settlements referencing the batch (their key takes FOR KEY SHARE on the batch
    row until they commit), then count themselves on it (``batch_chunk_done``). That lock must not wait for the
    other chunk's key lock: two chunks waiting for each other deadlocked and failed the batch (seen with 2 workers)."""
    from settlement.services import batch_chunk_done

    p = _participations(1)[0]
    batch = SettlementBatch.objects.create(kind="event", event=p.event, program_id=p.event.program_id, created_at=NOW,
                                           status="running", chunks_total=2)
    other = other_connection
    # The other worker's chunk: its settlement written, not committed yet.
    row = _settlement_row(p) | {"batch_id": batch.pk}
    columns = ", ".join(f'"{c}"' for c in row)
    other.execute(f"INSERT INTO settlement_eventsettlement ({columns}) VALUES ({', '.join(['%s'] * len(row))})",
                  [str(v) if isinstance(v, bulk.RawJson) else v for v in row.values()])
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("SET LOCAL lock_timeout = '2s'")
        done = batch_chunk_done(batch_id=batch.pk, now=NOW, actor=TEST_ACTOR, counts={"calculated": 3})
    assert (done.chunks_done, done.items_calculated) == (1, 3)
    other.rollback()
    batch.refresh_from_db()
    assert (batch.chunks_done, batch.items_calculated, batch.status) == (1, 3, "running")
