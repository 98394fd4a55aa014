"""The signed, expiring one-click opt-out link of an event notice: works once, refused when tampered with, expired
or past the program's cut-off (a page saying why), and leaves the ledger and settlement consistent."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core import mail

from cpm.base.capabilities import CustomerActor
from cpm.base.errors import NotFound
from cpm.models import AuditEntry
from cpm.notifications import services, views
from cpm.notifications.choices import MessageKind, MessageStatus
from cpm.notifications.models import Message, NotificationPolicy
from cpm.notifications.tasks import send_due
from events.choices import EventStatus, OptOutChannel, ParticipationStatus
from events.models import OptOut, Participation
from programs.choices import OptOutAllowanceKind
from settlement import services as settlement_services
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.events import la
from tests.factories.settlement import event_hours, run_on_commit, write_hourly

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=UTC)  # 13:00 PDT; the event runs 15:00-18:00 PDT


def send_notices(now=SENT_AT):
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def link_path(email) -> str:
    url = re.search(r"https://cpm\.example(/notices/opt-out/\S+/)", email.body).group(1)
    return url


@pytest.fixture
def at(monkeypatch):
    """Set the instant the view acts at."""
    def set_now(instant):
        monkeypatch.setattr(views, "_now", lambda: instant)
    return set_now


@pytest.fixture
def two(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    ben = participant(program, first="Ben", last="Okafor", email="ben@example.com")
    event = reserved_event(program, [ana, ben])
    send_notices()
    return event, ana, ben


def test_the_link_opts_the_customer_out_once(client, at, two):
    event, ana, ben = two
    path = link_path(mail.outbox[0])
    at(SENT_AT + dt.timedelta(minutes=5))
    page = client.get(path)
    assert page.status_code == 200
    assert "Opt me out of this event" in page.text and "Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT" in page.text
    assert Participation.objects.get(subscription=ana).status == ParticipationStatus.RESERVED  # GET changes nothing

    done = client.post(path)
    assert done.status_code == 200 and "You are opted out" in done.text
    p = Participation.objects.get(subscription=ana)
    assert p.status == ParticipationStatus.OPTED_OUT and p.opted_out_at == SENT_AT + dt.timedelta(minutes=5)
    opt_out = OptOut.objects.get()
    notice = Message.objects.get(customer=ana.enrollment.account.customer, kind=MessageKind.EVENT_NOTICE)
    assert (opt_out.channel, opt_out.recorded_by, opt_out.reason) == (
        OptOutChannel.NOTICE_LINK, None, f"opt-out link of message #{notice.pk}")
    customer_id = ana.enrollment.account.customer_id
    audit = AuditEntry.objects.get(object_type="events.participation", object_id=str(p.pk), to_status="opted_out")
    assert audit.actor_label == f"customer:{customer_id} (opt-out link)" and audit.actor_id is None
    assert AuditEntry.objects.filter(code="message.opt_out_link_used",
                                     actor_label=f"customer:{customer_id} (opt-out link)").count() == 1
    assert Participation.objects.get(subscription=ben).status == ParticipationStatus.RESERVED

    again = client.post(path)
    assert again.status_code == 200 and "This link was already used" in again.text
    assert OptOut.objects.count() == 1
    assert client.get(path).text.count("already used") == 1

    # The opt-out is confirmed on the next tick.
    send_notices(SENT_AT + dt.timedelta(minutes=6))
    confirmation = Message.objects.get(kind=MessageKind.OPT_OUT_CONFIRMATION)
    assert (confirmation.customer_id, confirmation.status) == (customer_id, MessageStatus.SENT)
    assert mail.outbox[-1].body.startswith("Hello Ana Lopez,\n\nYou are opted out of the Cool Rewards event of "
                                           "Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT.")


def test_a_tampered_link_is_refused(client, at, two):
    path = link_path(mail.outbox[0])
    at(SENT_AT + dt.timedelta(minutes=5))
    token = path.split("/")[-2]
    message_id, rest = token.split(":", 1)
    forged = f"/notices/opt-out/{int(message_id) + 1}:{rest}/"  # another message, the same signature
    for bad in (forged, path[:-3] + "xx/"):
        response = client.post(bad)
        assert response.status_code == 400
        assert "This link is not valid" in response.text
    assert OptOut.objects.count() == 0


def test_an_expired_link_is_refused(client, at, program, two):
    NotificationPolicy.objects.create(program=program, opt_out_link_hours=1, updated_at=SENT_AT)
    path = link_path(mail.outbox[0])
    at(SENT_AT + dt.timedelta(minutes=59))
    assert client.get(path).status_code == 200
    at(SENT_AT + dt.timedelta(minutes=61))
    response = client.post(path)
    assert response.status_code == 410
    assert "This link has expired (links work for 1 hours after the message)" in response.text
    assert OptOut.objects.count() == 0


def test_past_the_programs_cut_off_the_page_says_why(client, at, program, two):
    program.participation_rules.update(opt_out_cutoff_minutes=60)
    path = link_path(mail.outbox[0])
    at(la(2026, 7, 15, 14, 30))  # 30 minutes before the start: past the 60-minute cut-off
    response = client.post(path)
    assert response.status_code == 409
    assert ("Opt-outs close 60 minutes before the event starts (cut-off 2026-07-15 14:00 PDT)."
            in response.text)
    assert 'data-code="opt_out_cutoff"' in response.text
    assert OptOut.objects.count() == 0
    assert Message.objects.filter(link_used_at__isnull=False).count() == 0


def test_the_link_counts_against_the_opt_out_allowance(client, at, program, two):
    program.participation_rules.update(opt_out_allowance_kind=OptOutAllowanceKind.COUNT, opt_out_allowance_count=1,
                                       refuse_opt_out_beyond_allowance=True)
    event, ana, _ = two
    at(SENT_AT + dt.timedelta(minutes=5))
    assert client.post(link_path(mail.outbox[0])).status_code == 200
    second = reserved_event(program, [ana], start=la(2026, 7, 16, 15))
    send_notices(dt.datetime(2026, 7, 16, 20, 0, tzinfo=UTC))
    assert Message.objects.filter(event=second, kind=MessageKind.EVENT_NOTICE).count() == 1
    at(dt.datetime(2026, 7, 16, 20, 5, tzinfo=UTC))
    refused = client.post(link_path(mail.outbox[-1]))
    assert refused.status_code == 409 and 'data-code="opt_out_allowance"' in refused.text
    assert Participation.objects.get(event=second).status == ParticipationStatus.RESERVED


def test_a_customer_actor_acts_only_on_their_own_messages(two):
    _, ana, ben = two
    message = Message.objects.get(customer=ana.enrollment.account.customer, kind=MessageKind.EVENT_NOTICE)
    with pytest.raises(NotFound):
        services.participation_opt_out_by_link(
            message=message, now=SENT_AT, actor=CustomerActor(customer_id=ben.enrollment.account.customer_id,
                                                               via="opt-out link"))
    assert OptOut.objects.count() == 0


def test_settlement_pays_nothing_for_the_event_the_customer_opted_out_of_by_link(client, at, program, two):
    event, ana, ben = two
    # 2 kWh an hour on the baseline days, 1 kWh in each event hour: 3 kWh avoided over the 3-hour event.
    hours = event_hours(event.start.astimezone(UTC))
    for sub in (ana, ben):
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 6, 15),
                     last=dt.date(2026, 7, 16), kwh=2.0, overrides={h: 1.0 for h in hours})
    at(SENT_AT + dt.timedelta(minutes=5))
    assert client.post(link_path(mail.outbox[0])).status_code == 200
    type(event).objects.filter(pk=event.pk).update(status=EventStatus.COMPLETED)
    event.refresh_from_db()
    Participation.objects.filter(subscription=ben).update(status=ParticipationStatus.PARTICIPATED)
    with run_on_commit():
        settlement_services.event_settle(event=event, now=dt.datetime(2026, 7, 20, tzinfo=UTC), actor=TEST_ACTOR)
    by_customer = {s.account.customer.first_name: s
                   for s in EventSettlement.objects.select_related("account__customer")}
    assert by_customer["Ana"].opted_out is True
    assert by_customer["Ana"].amount == Decimal("0.00")
    assert by_customer["Ben"].opted_out is False
    assert by_customer["Ben"].kwh_avoided == Decimal("3.0000")
    assert by_customer["Ben"].amount == Decimal("3.75")  # 3 kWh x $1.25


def test_opening_the_link_past_the_cut_off_or_after_the_event_says_why_at_once(client, at, program, two):
    # Before: the page offered "Opt me out of this event" (200) after the cut-off and after the event's end, and
    # refused only once the customer pressed the button.
    program.participation_rules.update(opt_out_cutoff_minutes=60)
    path = link_path(mail.outbox[0])
    at(la(2026, 7, 15, 13, 30))
    assert "Opt me out of this event" in client.get(path).text  # before the cut-off: the button
    at(la(2026, 7, 15, 14, 30))
    response = client.get(path)
    assert response.status_code == 409 and 'data-code="opt_out_cutoff"' in response.text
    assert "Opt-outs close 60 minutes before the event starts (cut-off 2026-07-15 14:00 PDT)." in response.text
    assert "Opt me out of this event" not in response.text
    at(la(2026, 7, 15, 18, 30))
    response = client.get(path)
    assert response.status_code == 409 and "This event is over." in response.text
    assert "Opt me out of this event" not in response.text
    assert OptOut.objects.count() == 0


def test_opening_the_link_of_a_cancelled_event_says_so(client, at, two):
    event, _, _ = two
    type(event).objects.filter(pk=event.pk).update(status=EventStatus.CANCELLED)
    at(SENT_AT + dt.timedelta(minutes=5))
    response = client.get(link_path(mail.outbox[0]))
    assert response.status_code == 409
    assert "This event was cancelled: there is nothing to opt out of." in response.text
    assert "Opt me out of this event" not in response.text


def test_the_link_of_a_customer_whose_participation_was_released_does_not_claim_an_opt_out(client, at, two):
    # Ana's place in the event was released (device removed) after her notice. Before: the page offered the button
    # and, pressed, said "You are opted out ... We will send you a confirmation" (none was sent), and used the link.
    event, ana, _ = two
    from events.services import release_participations

    release_participations(Participation.objects.filter(subscription=ana), reason="device removed",
                           now=SENT_AT + dt.timedelta(minutes=2), actor=TEST_ACTOR)
    path = link_path(mail.outbox[0])
    at(SENT_AT + dt.timedelta(minutes=5))
    for response in (client.get(path), client.post(path)):
        assert response.status_code == 409 and 'data-code="not_taking_part"' in response.text
        assert "You are no longer taking part in this event" in response.text
        assert "You are opted out" not in response.text and "Opt me out" not in response.text
    assert OptOut.objects.count() == 0
    assert Message.objects.filter(link_used_at__isnull=False).count() == 0


def test_the_link_after_a_csr_opted_the_customer_out_says_already_opted_out(client, at, two):
    from events import services as event_services

    event, ana, _ = two
    event_services.participation_opt_out(participation=Participation.objects.get(subscription=ana), channel="csr",
                                         now=SENT_AT + dt.timedelta(minutes=1), actor=TEST_ACTOR)
    path = link_path(mail.outbox[0])
    at(SENT_AT + dt.timedelta(minutes=5))
    for response in (client.get(path), client.post(path)):
        assert response.status_code == 200
        assert "You are already opted out of the event on Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT" in response.text
        assert "We will send you a confirmation" not in response.text and "Opt me out" not in response.text
    assert OptOut.objects.count() == 1
