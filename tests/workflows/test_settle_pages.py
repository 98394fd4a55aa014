"""Issue 17.4: event and season settlement (and re-settlement) from the admin, on the settlement batches' list, for
the settlement analyst (use cases event.settle and season.settle); others read which capability they need."""

import datetime as dt
from html import unescape

import pytest

from cpm.base import roles
from cpm.models import AuditEntry
from events.choices import EventStatus
from settlement.choices import BatchKind
from settlement.models import EventSettlement, SettlementBatch
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
LIST = "/admin/settlement/settlementbatch/"
EVENTS = "/admin/settlement/settlementbatch/settle-events/"
SEASON = "/admin/settlement/settlementbatch/settle-season/"


@pytest.fixture
def settled_world():
    program = ProgramFactory()
    sub = active_participant(program=program)
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    return program, event


def test_list_offers_both_to_the_analyst(role_client):
    html = role_client(roles.SETTLEMENT_ANALYST).get(LIST).content.decode()
    assert f'<a href="{EVENTS}" class="workflow-tool">Settle events</a>' in html
    assert f'<a href="{SEASON}" class="workflow-tool">Settle a season</a>' in html


def test_others_read_why(role_client, settled_world):
    client = role_client(roles.PROGRAM_ADMIN)
    html = unescape(client.get(LIST).content.decode())
    assert EVENTS not in html and SEASON not in html
    assert ("Settle events: not offered to you; it needs the capability 'Run event and season settlement' "
            "(event.settle).") in html
    assert "Settle a season: not offered to you; it needs the capability 'Run event and season settlement'" in html
    assert client.get(EVENTS).status_code == 403
    assert client.post(EVENTS, {"events": [settled_world[1].pk]}).status_code == 403
    assert client.post(SEASON, {}).status_code == 403
    assert SettlementBatch.objects.count() == 0


def test_settle_then_resettle_an_event(role_client, settled_world, django_capture_on_commit_callbacks):
    program, event = settled_world
    client = role_client(roles.SETTLEMENT_ANALYST)
    page = client.get(EVENTS)
    assert page.status_code == 200 and f'value="{event.pk}"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(EVENTS, {"events": [event.pk]}, follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    batch = SettlementBatch.objects.get()
    assert (batch.kind, batch.event_id, batch.program_id) == (BatchKind.EVENT, event.pk, program.pk)
    assert EventSettlement.objects.filter(participation__event=event).count() == 1
    assert f"{event}: settlement batch {batch.pk} (" in unescape(response.content.decode())
    assert AuditEntry.objects.filter(object_type="settlement.settlementbatch", object_id=str(batch.pk),
                                     actor__username="w-settlement-analyst").exists()
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(EVENTS, {"events": [event.pk]}, follow=True)
    recalc = SettlementBatch.objects.exclude(pk=batch.pk).get()
    assert recalc.kind == BatchKind.EVENT_RECALC
    assert f"{event}: re-settlement batch {recalc.pk} (" in unescape(again.content.decode())


def test_an_event_not_completed_is_not_offered(role_client):
    event = EventFactory(status=EventStatus.SCHEDULED)
    client = role_client(roles.SETTLEMENT_ANALYST)
    response = client.post(EVENTS, {"events": [event.pk]})
    assert response.status_code == 200
    assert f"Select a valid choice. {event.pk} is not one of the available choices." in unescape(
        response.content.decode())
    assert SettlementBatch.objects.count() == 0


def test_settle_a_season(role_client, settled_world):
    program, _event = settled_world
    season = SeasonFactory(program=program, start_date=dt.date(2020, 6, 1), end_date=dt.date(2020, 9, 30))
    client = role_client(roles.SETTLEMENT_ANALYST)
    assert client.get(SEASON).status_code == 200
    response = client.post(SEASON, {"program": program.pk, "season": season.pk}, follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    batch = SettlementBatch.objects.get()
    assert (batch.kind, batch.season_id, batch.program_id) == (BatchKind.SEASON, season.pk, program.pk)
    html = unescape(response.content.decode())
    assert f"Season settlement batch {batch.pk} of {season} (completed)." in html


def test_season_refusals_in_words(role_client, settled_world):
    program, _event = settled_world
    future = SeasonFactory(program=program, name="Summer 2099", start_date=dt.date(2099, 6, 1),
                           end_date=dt.date(2099, 9, 30))
    other = SeasonFactory()
    client = role_client(roles.SETTLEMENT_ANALYST)
    early = client.post(SEASON, {"program": program.pk, "season": future.pk})
    assert early.status_code == 200
    assert "ends on 2099-09-30; settle it after that." in unescape(early.content.decode())
    wrong = client.post(SEASON, {"program": program.pk, "season": other.pk})
    assert wrong.status_code == 200
    assert f"{other} is not a season of {program.code}." in unescape(wrong.content.decode())
    assert SettlementBatch.objects.count() == 0
