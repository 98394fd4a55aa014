"""Planning and sending customer messages: exact recipients, times and text; idempotent replays; the rules."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from cpm.models import AuditEntry
from cpm.notifications import services
from cpm.notifications.channels import LocmemSmsBackend
from cpm.notifications.choices import ContactChoice, MessageKind, MessageStatus
from cpm.notifications.models import Message, NotificationPolicy
from cpm.notifications.tasks import send_due
from enrollments import services as enrollment_services
from enrollments.choices import AccountStatus, EnrollmentStatus
from events import services as event_services
from events.choices import ParticipationStatus
from settlement.choices import EventSettlementStatus
from tests.actors import TEST_ACTOR
from tests.factories.events import la
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
K, S = MessageKind, MessageStatus


def utc(*a):
    return dt.datetime(*a, tzinfo=UTC)


def tick(now):
    """The beat task's two steps as of ``now``, with the chunk tasks run (eagerly) when the job commits."""
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def rows(**filters):
    return sorted((m.kind, m.customer.last_name, m.channel, m.status) for m in
                  Message.objects.filter(**filters).select_related("customer"))


@pytest.fixture
def four(program):
    """Ana (e-mail by default), Ben (prefers SMS), Cy (prefers none), Dee (both, closed account)."""
    subs = {
        "Ana": participant(program, first="Ana", last="Lopez", email="ana@example.com"),
        "Ben": participant(program, first="Ben", last="Okafor", email="ben@example.com", phone="+15035550102"),
        "Cy": participant(program, first="Cy", last="Young", email="cy@example.com"),
        "Dee": participant(program, first="Dee", last="Park", email="dee@example.com"),
    }
    now = utc(2026, 7, 1)
    services.contact_preference_set(customer=subs["Ben"].enrollment.account.customer, channel=ContactChoice.SMS,
                                    now=now, actor=TEST_ACTOR)
    services.contact_preference_set(customer=subs["Cy"].enrollment.account.customer, channel=ContactChoice.NONE,
                                    program=program, now=now, actor=TEST_ACTOR)
    dee = subs["Dee"].enrollment.account
    type(dee).objects.filter(pk=dee.pk).update(status=AccountStatus.CLOSED, closed_on=dt.date(2026, 7, 2))
    return subs


def test_event_notice_and_reminder_recipients_times_and_text(program, four):
    event = reserved_event(program, four.values())
    tick(utc(2026, 7, 14, 16))  # the day before: planned, nothing due yet
    assert rows() == [
        (K.EVENT_NOTICE, "Lopez", "email", S.QUEUED), (K.EVENT_NOTICE, "Okafor", "sms", S.QUEUED),
        (K.REMINDER, "Lopez", "email", S.QUEUED), (K.REMINDER, "Okafor", "sms", S.QUEUED)]
    notice = Message.objects.get(kind=K.EVENT_NOTICE, channel="email")
    assert notice.due_at == utc(2026, 7, 15, 20, 0)  # 13:00 PDT, the event's notification time
    assert Message.objects.get(kind=K.REMINDER, channel="email").due_at == utc(2026, 7, 15, 21, 0)  # 14:00 PDT
    assert mail.outbox == []

    tick(utc(2026, 7, 15, 20, 0))
    assert rows(kind=K.EVENT_NOTICE) == [(K.EVENT_NOTICE, "Lopez", "email", S.SENT),
                                         (K.EVENT_NOTICE, "Okafor", "sms", S.SENT)]
    [email] = mail.outbox
    assert email.to == ["ana@example.com"]
    assert email.subject == "Cool Rewards: energy event Wed Jul 15"
    assert email.body.startswith(
        "Hello Ana Lopez,\n\nCool Rewards calls an energy event on Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT.\n"
        "You earn $1.25 per kWh you avoid below your usual use.\n\nDon't want to take part this time? Opt out of "
        "this event with one click (until Wed Jul 15, 2026 6:00 PM PDT):\nhttps://cpm.example/notices/opt-out/")
    assert email.body.endswith("\n\n-- Cool Rewards")
    [sms] = LocmemSmsBackend.outbox
    assert sms.recipient == "+15035550102"
    assert sms.body.startswith("Cool Rewards: event Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT. Earn $1.25 per kWh "
                               "you avoid below your usual use. Opt out: https://cpm.example/notices/opt-out/")
    notice.refresh_from_db()
    assert notice.sent_at == utc(2026, 7, 15, 20, 0) and notice.provider_id.startswith("<")
    assert notice.body == email.body
    assert AuditEntry.objects.filter(object_type="notifications.message", object_id=str(notice.pk),
                                     to_status="sent", actor_label="system:celery:notifications.send").count() == 1
    assert event.pk == notice.event_id


def test_a_replayed_tick_sends_nothing_twice(program, four):
    reserved_event(program, four.values())
    for _ in range(3):
        tick(utc(2026, 7, 15, 20, 0))
        services.messages_send(ids=list(Message.objects.values_list("pk", flat=True)), now=utc(2026, 7, 15, 20, 0))
    assert len(mail.outbox) == 1 and len(LocmemSmsBackend.outbox) == 1
    assert Message.objects.count() == 4
    assert AuditEntry.objects.filter(object_type="notifications.message", to_status="sent").count() == 2


def test_quiet_hours_shift_a_night_notification_to_the_morning(program, four):
    # Notified at 22:30 PDT the evening before a 15:00 PDT event: the notice waits for 08:00 PDT.
    reserved_event(program, [four["Ana"]], notify_before=dt.timedelta(hours=16, minutes=30))
    tick(utc(2026, 7, 14, 16))
    notice = Message.objects.get(kind=K.EVENT_NOTICE)
    assert notice.due_at == utc(2026, 7, 15, 15, 0)
    assert notice.due_note == ("quiet hours: moved from 2026-07-14 22:30 PDT to the morning window "
                               "2026-07-15 08:00 PDT")
    tick(utc(2026, 7, 15, 5, 30))  # 22:30 PDT: nothing goes
    assert mail.outbox == []
    tick(utc(2026, 7, 15, 15, 0))
    assert len(mail.outbox) == 1


def test_dst_day_event_window_and_due_times_in_local_time(program, four):
    # Monday 2026-03-09, the day after LA springs forward: 14:00-16:00 PDT = 21:00-23:00 UTC; notified 18 hours
    # before, Sunday 2026-03-08 20:00 PDT (03:00 UTC Mar 9), before quiet hours.
    event = reserved_event(program, [four["Ana"]], start=la(2026, 3, 9, 14), hours=2,
                           notify_before=dt.timedelta(hours=18))
    assert event.start == utc(2026, 3, 9, 21, 0)
    tick(utc(2026, 3, 8, 12))
    notice = Message.objects.get(kind=K.EVENT_NOTICE)
    assert notice.due_at == utc(2026, 3, 9, 3, 0)  # 20:00 PDT Sunday
    tick(notice.due_at)
    assert "on Mon Mar 9, 2026 2:00 PM to 4:00 PM PDT." in mail.outbox[0].body
    # The reminder, 13:00 PDT Monday = 20:00 UTC (it would be 21:00 UTC in winter time).
    assert Message.objects.get(kind=K.REMINDER).due_at == utc(2026, 3, 9, 20, 0)


def test_cancellation_to_those_told_and_queued_reminders_suppressed(program, four):
    event = reserved_event(program, four.values())
    tick(utc(2026, 7, 15, 20, 0))
    event_services.event_cancel(event=event, reason="cooler than forecast", now=utc(2026, 7, 15, 20, 10),
                                actor=TEST_ACTOR)
    tick(utc(2026, 7, 15, 20, 10))
    assert rows(kind=K.CANCELLATION) == [(K.CANCELLATION, "Lopez", "email", S.SENT),
                                         (K.CANCELLATION, "Okafor", "sms", S.SENT)]
    assert mail.outbox[-1].subject == "Cancelled: Cool Rewards event Wed Jul 15"
    assert "The Cool Rewards event of Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT is cancelled." in mail.outbox[-1].body
    tick(utc(2026, 7, 15, 21, 0))
    reminders = Message.objects.filter(kind=K.REMINDER)
    assert {(m.status, m.detail) for m in reminders} == {(S.SUPPRESSED, "the event is cancelled")}
    tick(utc(2026, 7, 15, 21, 5))
    assert Message.objects.filter(kind=K.CANCELLATION).count() == 2


def test_no_message_once_the_customer_unenrolled(program, four):
    reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 14, 16))
    enrollment_services.enrollment_unenroll(enrollment=four["Ana"].enrollment, effective_date=dt.date(2026, 7, 15),
                                            now=utc(2026, 7, 14, 17), actor=TEST_ACTOR)
    tick(utc(2026, 7, 15, 20, 0))
    assert mail.outbox[0].subject == "Your Cool Rewards enrollment has ended"  # the only e-mail
    assert len(mail.outbox) == 1
    assert Message.objects.get(kind=K.EVENT_NOTICE).status == S.SUPPRESSED


def test_weekly_cap_drops_reminders_not_notices(program, four):
    NotificationPolicy.objects.create(program=program, weekly_cap=1, updated_at=utc(2026, 7, 1))
    reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 20, 0))
    tick(utc(2026, 7, 15, 21, 0))
    assert rows() == [(K.EVENT_NOTICE, "Lopez", "email", S.SENT), (K.REMINDER, "Lopez", "email", S.SUPPRESSED)]
    assert Message.objects.get(kind=K.REMINDER).detail == "weekly cap of 1 messages reached"


def test_opted_out_customer_gets_no_reminder(program, four):
    event = reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 20, 0))
    p = event.participations.get()
    event_services.participation_opt_out(participation=p, channel="csr", now=utc(2026, 7, 15, 20, 30),
                                         actor=TEST_ACTOR)
    tick(utc(2026, 7, 15, 21, 0))
    assert rows() == [(K.EVENT_NOTICE, "Lopez", "email", S.SENT), (K.OPT_OUT_CONFIRMATION, "Lopez", "email", S.SENT),
                      (K.REMINDER, "Lopez", "email", S.SUPPRESSED)]
    assert mail.outbox[-1].subject == "You opted out of the Cool Rewards event Wed Jul 15"


def test_enrollment_decisions(program, four):
    from tests.factories.enrollments import EnrollmentFactory

    pending = EnrollmentFactory(program=program, account=four["Ana"].enrollment.account,
                                status=EnrollmentStatus.PENDING_APPROVAL, effective_date=dt.date(2026, 8, 1))
    refused = EnrollmentFactory(program=program, account=four["Ben"].enrollment.account,
                                status=EnrollmentStatus.PENDING_APPROVAL)
    closed = EnrollmentFactory(program=program, account=four["Dee"].enrollment.account,
                               status=EnrollmentStatus.PENDING_APPROVAL)
    now = utc(2026, 7, 20, 17)
    from cpm.base.states import transition
    from enrollments.choices import ENROLLMENT_TRANSITIONS
    from enrollments.models import Enrollment

    transition(obj=pending, to=EnrollmentStatus.ACTIVE, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=TEST_ACTOR)
    enrollment_services.enrollment_reject(enrollment=refused, now=now, actor=TEST_ACTOR,
                                          reason_text="the rate is not eligible")
    transition(obj=Enrollment.objects.get(pk=closed.pk), to=EnrollmentStatus.REJECTED,
               allowed=ENROLLMENT_TRANSITIONS, now=now, actor=TEST_ACTOR)
    tick(now)
    tick(now + dt.timedelta(minutes=1))
    assert rows() == [(K.ENROLLMENT_APPROVED, "Lopez", "email", S.SENT),
                      (K.ENROLLMENT_REFUSED, "Okafor", "sms", S.SENT)]
    assert mail.outbox[0].subject == "Welcome to Cool Rewards"
    assert "approved from 2026-08-01." in mail.outbox[0].body
    assert LocmemSmsBackend.outbox[0].body == ("Cool Rewards: we could not enroll you (the rate is not "
                                               "eligible).")


def test_event_summary_with_kwh_and_credit(program, four):
    from tests.factories.settlement import EventSettlementFactory

    event = reserved_event(program, [four["Ana"]])
    p = event.participations.get()
    type(p).objects.filter(pk=p.pk).update(status=ParticipationStatus.PARTICIPATED)
    approved = utc(2026, 7, 17, 18)
    EventSettlementFactory(participation=p, event=event, program=program, enrollment=p.enrollment,
                           account=p.enrollment.account, service_point=p.service_point,
                           status=EventSettlementStatus.APPROVED, kwh_avoided=Decimal("3.4567"),
                           posted_amount=Decimal("4.32"), approved_at=approved)
    tick(approved + dt.timedelta(minutes=1))
    summary = Message.objects.get(kind=K.EVENT_SUMMARY)
    assert summary.status == S.SENT
    assert mail.outbox[-1].subject == "Your results: Cool Rewards event Wed Jul 15"
    assert "Energy avoided: 3.46 kWh\nYour credit: $4.32" in mail.outbox[-1].body
    # The next ticks do not re-read an event whose approved settlements did not change.
    assert services.event_summaries_plan(now=approved + dt.timedelta(minutes=2)) == 0
    assert Message.objects.filter(kind=K.EVENT_SUMMARY).count() == 1


def test_peak_time_rebate_customers_not_notified_are_released(db):
    from events.models import Participation, Reservation
    from programs.choices import ProgramType
    from tests.factories.enrollments import AccountFactory, CustomerFactory, active_participant
    from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory

    ptr = ProgramFactory(code="ptr", name="Peak Time Rebates", program_type=ProgramType.PEAK_TIME_REBATE,
                         requires_device=False, eligible_device_types=[])
    SeasonFactory(program=ptr)
    ParticipationRuleFactory(program=ptr)
    IncentiveRuleFactory(program=ptr, amount=Decimal("1.00"))
    told = active_participant(program=ptr, device_kwargs=False, account=AccountFactory(
        customer=CustomerFactory(first_name="Ana", last_name="Lopez", email="ana@example.com")))
    silent = active_participant(program=ptr, device_kwargs=False, account=AccountFactory(
        customer=CustomerFactory(first_name="Ben", last_name="Okafor", email="", phone="")))
    event = reserved_event(ptr, [told, silent], notify_before=dt.timedelta(hours=23))  # 16:00 PDT the day before
    for p in event.participations.all():
        Reservation.objects.create(event=event, subscription=p.subscription, enrollment=p.enrollment,
                                   service_point=p.service_point, decision="reserved", decided_at=utc(2026, 7, 13))
    tick(utc(2026, 7, 14, 22, 59))
    assert Participation.objects.filter(event=event, status="reserved").count() == 2  # not yet notification time
    type(event).objects.filter(pk=event.pk).update(status="dispatched")
    tick(utc(2026, 7, 14, 23, 0))
    tick(utc(2026, 7, 14, 23, 1))
    assert rows(kind=K.EVENT_NOTICE) == [(K.EVENT_NOTICE, "Lopez", "email", S.SENT)]
    assert mail.outbox[0].body.startswith("Hello Ana Lopez,\n\nPeak Time Rebates calls an energy event on Wed Jul 15, "
                                          "2026 3:00 PM to 6:00 PM PDT.\nYou earn $1.00 per kWh you avoid below "
                                          "your usual use.")
    assert Participation.objects.get(subscription=told).status == "reserved"
    assert Participation.objects.get(subscription=silent).status == "cancelled"
    ledger = Reservation.objects.get(subscription=silent)
    assert ledger.decision == "released" and ledger.detail.startswith("not notified: a peak-time rebate's event")
    tick(utc(2026, 7, 14, 23, 2))
    assert Participation.objects.filter(event=event, status="cancelled").count() == 1


def test_season_statement_once_per_customer_settlement(program, four):
    from settlement.models import CustomerSettlement

    approved = utc(2026, 10, 3, 17)
    season = program.seasons.get()
    CustomerSettlement.objects.create(
        account=four["Ben"].enrollment.account, program=program, season=season, period_kind="season_end",
        period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1), status="approved",
        total_amount=Decimal("42.50"), approved_at=approved, created_at=approved, updated_at=approved)
    tick(approved + dt.timedelta(minutes=1))
    tick(approved + dt.timedelta(minutes=2))
    assert rows(kind=K.SEASON_STATEMENT) == [(K.SEASON_STATEMENT, "Okafor", "sms", S.SENT)]
    assert LocmemSmsBackend.outbox[-1].body == f"Cool Rewards {season.name}: $42.50 in bill credits."
    assert len(LocmemSmsBackend.outbox) == 1


def test_a_contact_preference_changed_after_planning_is_honoured_when_sending(program, four):
    # Ana's notice and reminder are planned the day before; that evening she asks for no messages at all. Ben
    # (SMS) changes his phone number. Before: both queued messages went out, Ana's to the e-mail she no longer
    # wanted, Ben's to his old number.
    reserved_event(program, [four["Ana"], four["Ben"]])
    tick(utc(2026, 7, 14, 16))
    ana = four["Ana"].enrollment.account.customer
    services.contact_preference_set(customer=ana, channel=ContactChoice.NONE, now=utc(2026, 7, 14, 17),
                                    actor=TEST_ACTOR)
    ben = four["Ben"].enrollment.account.customer
    type(ben).objects.filter(pk=ben.pk).update(phone="+15035559999")
    tick(utc(2026, 7, 15, 20, 0))
    assert mail.outbox == []
    notice = Message.objects.get(kind=K.EVENT_NOTICE, customer=ana)
    assert notice.status == S.SUPPRESSED
    assert notice.detail == ("the customer asked for no messages by E-mail (contact preference changed after it "
                             "was planned)")
    [sms] = LocmemSmsBackend.outbox
    assert sms.recipient == "+15035559999"
    assert Message.objects.get(kind=K.EVENT_NOTICE, customer=ben).recipient == "+15035559999"
    tick(utc(2026, 7, 15, 21, 0))
    assert Message.objects.get(kind=K.REMINDER, customer=ana).status == S.SUPPRESSED
    assert mail.outbox == []


def test_an_event_moved_after_its_notice_gets_a_notice_of_the_new_time(program, four):
    # Ana is told at 13:00 PDT of a 15:00-18:00 PDT event on Jul 15; at 13:10 PDT the event is moved to Jul 16
    # 15:00-18:00 PDT. Before: her notice, reminder and cancellation keys were per event, so the new plan created
    # nothing: no word of the new time, and the reminder of the old time went out on Jul 15 at 14:00 PDT.
    from devices.models import Device

    event = reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 20, 0))
    assert "on Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT." in mail.outbox[0].body
    Device.objects.update(last_seen_at=utc(2026, 7, 15, 20, 0))
    event_services.event_update(event=event, changes={"start": la(2026, 7, 16, 15), "end": la(2026, 7, 16, 18),
                                                      "notification_at": la(2026, 7, 16, 13)},
                                now=utc(2026, 7, 15, 20, 10), actor=TEST_ACTOR, reason="moved a day")
    tick(utc(2026, 7, 15, 20, 10))
    tick(utc(2026, 7, 15, 21, 0))  # the old reminder's time: it is not sent
    ana = four["Ana"].enrollment.account.customer
    old_reminder = Message.objects.get(kind=K.REMINDER, customer=ana, due_at=utc(2026, 7, 15, 21, 0))
    assert old_reminder.status == S.SUPPRESSED
    assert old_reminder.detail.startswith("the event was moved to another time after this was planned")
    assert len(mail.outbox) == 1
    new_notice = Message.objects.get(kind=K.EVENT_NOTICE, customer=ana, status=S.QUEUED)
    assert new_notice.due_at == utc(2026, 7, 16, 20, 0)  # 13:00 PDT on the new day
    tick(utc(2026, 7, 16, 20, 0))
    assert len(mail.outbox) == 2
    assert "on Thu Jul 16, 2026 3:00 PM to 6:00 PM PDT." in mail.outbox[1].body
    tick(utc(2026, 7, 16, 21, 0))
    assert len(mail.outbox) == 3 and mail.outbox[2].subject.startswith("Reminder")
    # Replayed, nothing is sent twice.
    tick(utc(2026, 7, 16, 21, 1))
    assert len(mail.outbox) == 3


def test_an_event_moved_earlier_before_its_notice_is_announced_at_the_new_time(program, four):
    from devices.models import Device

    event = reserved_event(program, [four["Ana"]])  # notice planned for Jul 15 13:00 PDT
    tick(utc(2026, 7, 14, 16))
    Device.objects.update(last_seen_at=utc(2026, 7, 14, 16, 30))
    # Moved to Jul 15 14:00-17:00 PDT, customers to be told the day before at 17:00 PDT.
    event_services.event_update(event=event, changes={"start": la(2026, 7, 15, 14), "end": la(2026, 7, 15, 17),
                                                      "notification_at": la(2026, 7, 14, 17)},
                                now=utc(2026, 7, 14, 17), actor=TEST_ACTOR, reason="hotter earlier")
    tick(utc(2026, 7, 14, 17))
    tick(utc(2026, 7, 15, 0, 0))  # 17:00 PDT the day before
    assert len(mail.outbox) == 1
    assert "on Wed Jul 15, 2026 2:00 PM to 5:00 PM PDT." in mail.outbox[0].body
    tick(utc(2026, 7, 15, 20, 0))  # the old notice's time: not sent again; the new reminder (13:00 PDT) goes
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Cool Rewards", "Reminder"]
    assert Message.objects.get(kind=K.EVENT_NOTICE, customer=four["Ana"].enrollment.account.customer,
                               due_at=utc(2026, 7, 15, 20, 0)).status == S.SUPPRESSED


def test_a_failed_message_retried_at_night_waits_for_the_morning_window(program, four):
    # Ana's season statement failed; an operator queues it again at 23:30 PDT. Before: due at once, sent at night.
    reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 20, 0))
    notice = Message.objects.get(kind=K.EVENT_NOTICE, channel="email")
    Message.objects.filter(pk=notice.pk).update(status=S.FAILED, sent_at=None)
    notice.kind = K.SEASON_STATEMENT  # any kind that does not answer an event
    Message.objects.filter(pk=notice.pk).update(kind=K.SEASON_STATEMENT, event=None, subject_ref="cs1")
    services.message_retry(message=notice, now=utc(2026, 7, 16, 6, 30), actor=TEST_ACTOR)
    notice.refresh_from_db()
    assert notice.status == S.QUEUED and notice.due_at == utc(2026, 7, 16, 15, 0)  # 08:00 PDT
    assert notice.due_note.startswith("retried: quiet hours: moved from 2026-07-15 23:30 PDT")
    # In the day it is due at once.
    Message.objects.filter(pk=notice.pk).update(status=S.FAILED)
    services.message_retry(message=notice, now=utc(2026, 7, 16, 18, 0), actor=TEST_ACTOR)
    notice.refresh_from_db()
    assert notice.due_at == utc(2026, 7, 16, 18, 0) and notice.due_note == "retried: at once"


def test_the_notice_promises_opt_out_only_until_the_programs_cut_off(program, four):
    # Opt-outs close 60 minutes before the start: the link's "until" is 2:00 PM, not the event's end (6:00 PM),
    # after which the link page would refuse.
    program.participation_rules.update(opt_out_cutoff_minutes=60)
    reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 20, 0))
    assert "Opt out of this event with one click (until Wed Jul 15, 2026 2:00 PM PDT)" in mail.outbox[0].body


def _approve_pending(program, account, *, now):
    from cpm.base.states import transition
    from enrollments.choices import ENROLLMENT_TRANSITIONS
    from tests.factories.enrollments import EnrollmentFactory

    enrollment = EnrollmentFactory(program=program, account=account, status=EnrollmentStatus.PENDING_APPROVAL,
                                   effective_date=dt.date(2026, 7, 20))
    transition(obj=enrollment, to=EnrollmentStatus.ACTIVE, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=TEST_ACTOR)
    return enrollment


def test_an_enrollment_ended_soon_after_its_welcome_is_told_it_ended(program, four):
    # Ana's enrollment is approved at 10:00 PDT and welcomed; at noon she calls and a CSR unenrolls her. Before: the
    # tick read one decision per enrollment from the 72-hour audit lookback (the oldest, the approval, already
    # told), so the "enrollment ended" message was never planned.
    now = utc(2026, 7, 20, 17)
    enrollment = _approve_pending(program, four["Ana"].enrollment.account, now=now)
    tick(now)
    enrollment_services.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2026, 7, 21),
                                            now=now + dt.timedelta(hours=2), actor=TEST_ACTOR,
                                            reason_text="changed her mind")
    tick(now + dt.timedelta(hours=2, minutes=1))
    tick(now + dt.timedelta(hours=2, minutes=2))
    assert rows(enrollment=enrollment) == [(K.ENROLLMENT_APPROVED, "Lopez", "email", S.SENT),
                                           (K.ENROLLMENT_ENDED, "Lopez", "email", S.SENT)]
    assert [m.subject for m in mail.outbox] == ["Welcome to Cool Rewards", "Your Cool Rewards enrollment has ended"]
    assert "Your enrollment in Cool Rewards ended on 2026-07-21: changed her mind." in mail.outbox[1].body


def test_an_enrollment_ended_before_its_welcome_went_gets_no_welcome(program, four):
    # Approved and ended at night, before the morning window: only the ended message goes, in the morning.
    now = utc(2026, 7, 21, 5)  # 22:00 PDT
    enrollment = _approve_pending(program, four["Ana"].enrollment.account, now=now)
    tick(now)
    enrollment_services.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2026, 7, 21),
                                            now=now + dt.timedelta(minutes=30), actor=TEST_ACTOR)
    tick(now + dt.timedelta(minutes=31))
    tick(utc(2026, 7, 21, 15))  # 08:00 PDT
    assert rows(enrollment=enrollment) == [(K.ENROLLMENT_APPROVED, "Lopez", "email", S.SUPPRESSED),
                                           (K.ENROLLMENT_ENDED, "Lopez", "email", S.SENT)]
    assert [m.subject for m in mail.outbox] == ["Your Cool Rewards enrollment has ended"]
    assert Message.objects.get(kind=K.ENROLLMENT_APPROVED).detail.startswith("the enrollment ended before")


def test_an_event_moved_away_and_back_is_announced_again_at_its_first_time(program, four):
    # Ana is told of Jul 15 15:00-18:00 PDT, then of the move to Jul 16; then the event is moved back to Jul 15.
    # Before: the notice key of the Jul 15 window existed (sent), so nothing told her of the move back: her last
    # word was "Thu Jul 16", and the first reminder of Jul 15 (queued since the first plan) went out at 14:00 PDT.
    from devices.models import Device

    event = reserved_event(program, [four["Ana"]])
    tick(utc(2026, 7, 15, 17, 0))  # 10:00 PDT: planned (notice due 13:00 PDT)
    tick(utc(2026, 7, 15, 20, 0))
    Device.objects.update(last_seen_at=utc(2026, 7, 15, 20, 0))
    event_services.event_update(event=event, changes={"start": la(2026, 7, 16, 15), "end": la(2026, 7, 16, 18),
                                                      "notification_at": la(2026, 7, 15, 13, 30)},
                                now=utc(2026, 7, 15, 20, 10), actor=TEST_ACTOR, reason="moved a day")
    tick(utc(2026, 7, 15, 20, 10))
    tick(utc(2026, 7, 15, 20, 30))
    event.refresh_from_db()
    Device.objects.update(last_seen_at=utc(2026, 7, 15, 20, 40))
    event_services.event_update(event=event, changes={"start": la(2026, 7, 15, 15), "end": la(2026, 7, 15, 18),
                                                      "notification_at": la(2026, 7, 15, 13, 45)},
                                now=utc(2026, 7, 15, 20, 40), actor=TEST_ACTOR, reason="back to the first day")
    tick(utc(2026, 7, 15, 20, 45))
    tick(utc(2026, 7, 15, 21, 0))  # 14:00 PDT: the reminder time
    tick(utc(2026, 7, 15, 21, 1))
    bodies = [m.body for m in mail.outbox]
    assert [b.split(" event on ")[1][:38] if " event on " in b else b[:40] for b in bodies] == [
        "Wed Jul 15, 2026 3:00 PM to 6:00 PM PD", "Thu Jul 16, 2026 3:00 PM to 6:00 PM PD",
        "Wed Jul 15, 2026 3:00 PM to 6:00 PM PD", "Hello Ana Lopez,\n\nA reminder: the Cool R"]
    assert "runs Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT." in bodies[3]
    assert [m.subject for m in mail.outbox].count("Reminder: Cool Rewards event today Wed Jul 15, 2026 3:00 PM to "
                                                  "6:00 PM PDT") == 1
    ana = four["Ana"].enrollment.account.customer
    assert Message.objects.filter(customer=ana, kind=K.REMINDER, status=S.SENT).count() == 1
    # Replayed, nothing more.
    tick(utc(2026, 7, 15, 21, 2))
    assert len(mail.outbox) == 4


def test_peak_time_rebate_customers_whose_notice_is_being_handed_are_not_released(db, monkeypatch):
    # The minute's tick runs on one worker while a sending chunk hands the last batch of notices to the channel on
    # another (SENDING, claimed and committed; nothing QUEUED left). Before: the tick took "none still QUEUED" for
    # "every notice handled" and released the customers of that batch as not notified, although their notice went.
    from cpm.notifications import channels
    from events.models import Participation
    from programs.choices import ProgramType
    from tests.factories.enrollments import AccountFactory, CustomerFactory, active_participant
    from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory

    ptr = ProgramFactory(code="ptr", name="Peak Time Rebates", program_type=ProgramType.PEAK_TIME_REBATE,
                         requires_device=False, eligible_device_types=[])
    SeasonFactory(program=ptr)
    ParticipationRuleFactory(program=ptr)
    IncentiveRuleFactory(program=ptr, amount=Decimal("1.00"))
    ana = active_participant(program=ptr, device_kwargs=False, account=AccountFactory(
        customer=CustomerFactory(first_name="Ana", last_name="Lopez", email="ana@example.com")))
    event = reserved_event(ptr, [ana], notify_before=dt.timedelta(hours=23))
    type(event).objects.filter(pk=event.pk).update(status="dispatched")
    now = utc(2026, 7, 14, 23, 0)
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    real_send = channels.send
    during = {}

    def send_while_the_tick_runs(items):
        during["statuses"] = list(Message.objects.filter(kind=K.EVENT_NOTICE).values_list("status", flat=True))
        during["released"] = services.notifications_tick(now=now + dt.timedelta(seconds=30),
                                                         actor=TEST_ACTOR)["ptr_unnotified_released"]
        return real_send(items)

    monkeypatch.setattr(channels, "send", send_while_the_tick_runs)
    services.messages_send(ids=list(Message.objects.filter(kind=K.EVENT_NOTICE).values_list("pk", flat=True)),
                           now=now)
    assert during == {"statuses": [S.SENDING], "released": 0}
    assert Participation.objects.get(subscription=ana).status == "reserved"
    assert rows(kind=K.EVENT_NOTICE) == [(K.EVENT_NOTICE, "Lopez", "email", S.SENT)]
    # Once it is recorded, the next tick releases nobody (she was told).
    services.notifications_tick(now=now + dt.timedelta(minutes=1), actor=TEST_ACTOR)
    assert Participation.objects.get(subscription=ana).status == "reserved"


def test_a_cancellation_decided_at_night_reaches_the_customer_before_an_early_event(program, four):
    # A 06:00-09:00 PDT event on Jul 16, announced on Jul 15 at 13:00 PDT, is cancelled at 23:00 PDT. The morning
    # window (08:00) is after the start. Before: the cancellation was held to the start itself (06:00 PDT), when the
    # customer has already pre-cooled or left the house; it now goes at the start minus the urgent lead (05:30).
    event = reserved_event(program, [four["Ana"]], start=la(2026, 7, 16, 6), notify_before=dt.timedelta(hours=17))
    tick(utc(2026, 7, 15, 20, 0))
    assert [m.subject for m in mail.outbox] == ["Cool Rewards: energy event Thu Jul 16"]
    event_services.event_cancel(event=event, reason="cooler than forecast", now=utc(2026, 7, 16, 6, 0),
                                actor=TEST_ACTOR)
    tick(utc(2026, 7, 16, 6, 0))
    cancellation = Message.objects.get(kind=K.CANCELLATION)
    assert cancellation.due_at == utc(2026, 7, 16, 12, 30)  # 05:30 PDT
    assert cancellation.due_note == ("quiet hours, but the event needs it before the morning window (2026-07-16 "
                                     "08:00 PDT): moved from 2026-07-15 23:00 PDT to 2026-07-16 05:30 PDT")
    tick(utc(2026, 7, 16, 12, 29))
    assert len(mail.outbox) == 1
    tick(utc(2026, 7, 16, 12, 30))
    assert mail.outbox[-1].subject == "Cancelled: Cool Rewards event Thu Jul 16"
    # Retried after a failure at 05:40 PDT (past the urgent lead), it goes at once.
    Message.objects.filter(pk=cancellation.pk).update(status=S.FAILED, sent_at=None)
    services.message_retry(message=cancellation, now=utc(2026, 7, 16, 12, 40), actor=TEST_ACTOR)
    cancellation.refresh_from_db()
    assert cancellation.due_at == utc(2026, 7, 16, 12, 40)


def test_the_notice_states_the_programs_rates_as_set(program, four):
    # $0.125 per kWh avoided and $2.00 per kW enrolled for each event. Before: "You earn $0.13 per kWh ..." (a rate
    # rounded to cents: not what the program pays) "and $2.00 $ per kW of enrolled capacity" (the basis's label).
    from programs.choices import IncentiveBasis, IncentiveKind
    from tests.factories.programs import IncentiveRuleFactory

    program.incentive_rules.update(amount=Decimal("0.1250"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PER_EVENT, basis=IncentiveBasis.PER_KW_ENROLLED,
                         amount=Decimal("2.0000"))
    reserved_event(program, [four["Ana"], four["Ben"]])
    tick(utc(2026, 7, 15, 20, 0))
    assert ("Cool Rewards calls an energy event on Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT.\nYou earn $0.125 per kWh "
            "you avoid below your usual use and $2.00 per kW of your enrolled capacity for each event.\n"
            in mail.outbox[0].body)
    assert "Earn $0.125 per kWh you avoid below your usual use." in LocmemSmsBackend.outbox[0].body
