"""CSR page actions on events and credits: opt-out (cut-off enforced), unavailability, settlement explanation."""

import datetime as dt
import re
from html import unescape

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from cpm.base import roles
from events.choices import EventStatus, ParticipationStatus
from events.models import OptOut, Unavailability
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def csr_client(client, django_user_model):
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    return client


def upcoming(*, hours_ahead: float, cutoff_minutes: int | None = 60):
    program = ProgramFactory()
    ParticipationRuleFactory(program=program, opt_out_cutoff_minutes=cutoff_minutes, window_start=None,
                             window_end=None)
    sub = active_participant(program=program)
    start = (timezone.now() + dt.timedelta(hours=hours_ahead)).replace(microsecond=0)
    event = EventFactory(program=program, name="Heat wave", start=start, end=start + dt.timedelta(hours=2),
                         notification_at=start - dt.timedelta(minutes=10), status=EventStatus.SCHEDULED)
    participation = ParticipationFactory(event=event, subscription=sub)
    return sub.enrollment.account.customer, participation


def test_csr_opts_a_device_out_of_an_upcoming_event(csr_client):
    customer, participation = upcoming(hours_ahead=24)
    page = csr_client.get(f"/csr/customers/{customer.pk}/").content.decode()
    assert "Heat wave" in page and f"/participations/{participation.pk}/opt-out/" in page
    response = csr_client.post(f"/csr/customers/{customer.pk}/participations/{participation.pk}/opt-out/",
                               {"reason": "Hosting a party", "confirmed": "yes"}, follow=True)
    assert "Opted out of Heat wave." in response.content.decode()
    participation.refresh_from_db()
    assert participation.status == ParticipationStatus.OPTED_OUT
    assert OptOut.objects.get(participation=participation).channel == "csr"


def test_opt_out_after_cutoff_is_refused_with_the_reason(csr_client):
    customer, participation = upcoming(hours_ahead=0.5, cutoff_minutes=60)
    response = csr_client.post(f"/csr/customers/{customer.pk}/participations/{participation.pk}/opt-out/",
                               {"confirmed": "yes"}, follow=True)
    body = response.content.decode()
    assert "Opt-out refused:" in body and "cut-off" in body.lower()
    participation.refresh_from_db()
    assert participation.status == ParticipationStatus.RESERVED
    assert not OptOut.objects.exists()


def test_csr_declares_unavailability_in_program_time(csr_client):
    customer, participation = upcoming(hours_ahead=48)
    enrollment = participation.enrollment
    day = (timezone.now() + dt.timedelta(days=3)).date()
    response = csr_client.post(f"/csr/customers/{customer.pk}/unavailability/",
                               {"enrollment": enrollment.pk, "start": f"{day}T08:00", "end": f"{day}T20:00",
                                "reason": "Vacation"}, follow=True)
    assert "Unavailability recorded" in response.content.decode()
    item = Unavailability.objects.get()
    assert item.end - item.start == dt.timedelta(hours=12)
    assert item.start.astimezone(dt.UTC).hour in (15, 16)  # 08:00 Los Angeles (PDT or PST)

    bad = csr_client.post(f"/csr/customers/{customer.pk}/unavailability/",
                          {"enrollment": enrollment.pk, "start": "tomorrow", "end": ""}, follow=True)
    assert "start and end must be dates and times" in bad.content.decode()
    assert Unavailability.objects.count() == 1


def test_opt_out_of_another_customers_participation_is_404(csr_client):
    customer, _ = upcoming(hours_ahead=24)
    _, other = upcoming(hours_ahead=24)
    response = csr_client.post(f"/csr/customers/{customer.pk}/participations/{other.pk}/opt-out/")
    assert response.status_code == 404


def test_csr_sees_the_credit_and_its_explanation_with_the_baseline_chart(csr_client):
    from decimal import Decimal

    from settlement import services
    from tests.factories.programs import IncentiveRuleFactory
    from tests.factories.settlement import EventFactory as SettledEventFactory
    from tests.factories.settlement import ParticipationFactory as SettledParticipationFactory
    from tests.factories.settlement import event_hours, run_on_commit, write_hourly

    program = ProgramFactory(name="Smart Energy")
    IncentiveRuleFactory(program=program, amount=Decimal("1.25"))
    event = SettledEventFactory(program=program)
    sub = active_participant(program=program)
    # 2 kWh every hour for 10 weeks, 0.5 kWh in the 3 event hours: 4.5 kWh avoided x $1.25 = $5.625 -> $5.63.
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={h: 0.5 for h in event_hours()})
    SettledParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC), actor=TEST_ACTOR)
    customer = sub.enrollment.account.customer
    page = csr_client.get(f"/csr/customers/{customer.pk}/").content.decode()
    assert "$5.63" in page and "4.50" in page
    settlement = sub.enrollment.account.event_settlements.get()
    detail = csr_client.get(f"/csr/customers/{customer.pk}/settlements/{settlement.pk}/").content.decode()
    assert "<svg" in detail and "$5.63" in detail
    assert "Adjusted baseline" in detail or "adjusted baseline" in detail


def _user(django_user_model, username, *, role=None, capabilities=()):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username, password="pw-123-long-enough")
    if role:
        user.groups.add(Group.objects.get(name=role))
    for codename in capabilities:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="cpm", codename=codename))
    return user


FORMS = {"enroll": "enroll-form", "unenroll": "unenroll-form", "opt_out": "opt-out-form",
         "unavailability": "unavailability-form"}
WHY = {
    "enroll": "Enrolling needs the capability 'Request enrollments on a customer's behalf'; your role does not "
              "have it.",
    "unenroll": "Unenrolling needs the capability 'Unenroll, cancel requests, add, replace or transfer enrolled "
                "devices'; your role does not have it.",
    "opt_out": "Opting a device out of an event needs the capability 'Opt a customer's device out of an event; "
               "declare unavailability' or 'Report device outcomes and device opt-outs for events (aggregators)'; "
               "your role has neither.",
    "unavailability": "Declaring unavailability needs the capability 'Opt a customer's device out of an event; "
                      "declare unavailability'; your role does not have it.",
}


def _page(client, customer) -> str:
    import html

    return html.unescape(client.get(f"/csr/customers/{customer.pk}/").content.decode())


def test_each_action_is_offered_only_with_its_capability_and_otherwise_the_page_says_why(client, django_user_model):
    from enrollments.models import Enrollment
    from tests.factories.programs import ProgramFactory

    customer, participation = upcoming(hours_ahead=24)
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory

    # An eligible program for a second device at the service point: the enroll form's place.
    ProgramFactory(code="other", name="Other program")
    DeviceInstallationFactory(device=DeviceFactory(), service_point=participation.enrollment.service_point)
    cases = {
        "csr": (_user(django_user_model, "csr", role=roles.CSR), set(FORMS)),
        "viewer": (_user(django_user_model, "viewer", role=roles.AUDITOR, capabilities=["use_csr_page"]), set()),
        "requester": (_user(django_user_model, "requester", role=roles.AUDITOR,
                            capabilities=["use_csr_page", "request_enrollments"]), {"enroll"}),
        "opt-out": (_user(django_user_model, "opt-out", role=roles.AUDITOR,
                          capabilities=["use_csr_page", "opt_out_on_behalf"]), {"opt_out", "unavailability"}),
    }
    for name, (user, offered) in cases.items():
        client.force_login(user)
        page = _page(client, customer)
        for action, form in FORMS.items():
            assert (f'class="{form}"' in page) == (action in offered), (name, action)
            assert (WHY[action] in page) == (action not in offered), (name, action)

    # Not offered is also refused: a viewer's posts are 403 and change nothing.
    client.force_login(cases["viewer"][0])
    enrollment = participation.enrollment
    base = f"/csr/customers/{customer.pk}"
    assert client.post(f"{base}/enroll/", {}).status_code == 403
    assert client.post(f"{base}/enrollments/{enrollment.pk}/unenroll/", {}).status_code == 403
    assert client.post(f"{base}/participations/{participation.pk}/opt-out/", {}).status_code == 403
    assert client.post(f"{base}/unavailability/", {"enrollment": enrollment.pk, "start": "2030-01-01T08:00",
                                                   "end": "2030-01-01T20:00"}).status_code == 403
    participation.refresh_from_db()
    assert participation.status == ParticipationStatus.RESERVED and not OptOut.objects.exists()
    assert not Unavailability.objects.exists()
    assert Enrollment.objects.get(pk=enrollment.pk).status == "active"


@pytest.mark.parametrize(("action", "data"), [
    ("unavailability/", {"enrollment": "abc", "start": "2026-07-01T00:00", "end": "2026-07-02T00:00"}),
    ("unavailability/", {"enrollment": "", "start": "x", "end": "y"}),
    ("contact-preference/", {"program": "abc", "channel": "sms"}),
    ("enroll/", {"account": "ACCOUNT", "program": "abc", "service_point": "1"}),
])
def test_a_posted_id_that_is_not_a_number_is_404_not_500(csr_client, action, data):
    """A text where the CSR form posts an id raised ValueError in the lookup: HTTP 500 (QA guard)."""
    customer, participation = upcoming(hours_ahead=48)
    if data.get("account") == "ACCOUNT":
        data = {**data, "account": participation.enrollment.account_id}
    response = csr_client.post(f"/csr/customers/{customer.pk}/{action}", data)
    assert response.status_code == 404
    assert not Unavailability.objects.exists()


def test_contact_preference_for_a_program_the_customer_is_enrolled_in_twice(csr_client):
    # A customer with two enrollments in one program (two service points, or enrolled again after ending one):
    # before, the program lookup joined the enrollments and raised MultipleObjectsReturned (HTTP 500).
    from cpm.notifications.models import ContactPreference
    from tests.factories.enrollments import AccountFactory, CustomerFactory

    program = ProgramFactory()
    account = AccountFactory(customer=CustomerFactory(email="ana@example.com"))
    active_participant(program=program, account=account)
    active_participant(program=program, account=account)
    customer = account.customer
    response = csr_client.post(f"/csr/customers/{customer.pk}/contact-preference/",
                               {"program": program.pk, "channel": "none"}, follow=True)
    assert response.status_code == 200
    assert f"Messages: No messages for {program.name}." in response.content.decode()
    assert ContactPreference.objects.get(customer=customer, program=program).channel == "none"


@pytest.mark.parametrize(("path", "data"), [
    ("contact-preference/", {"program": "abc", "channel": "none"}),
    ("unavailability/", {"enrollment": "abc", "start": "2026-07-01T10:00", "end": "2026-07-01T12:00"}),
    ("enroll/", {"account": "abc", "program": "1", "service_point": "1"}),
    ("enroll/", {"account": "1", "program": "x", "service_point": "1"}),
])
def test_a_malformed_id_in_a_csr_form_is_not_found_never_a_500(csr_client, path, data):
    customer, _participation = upcoming(hours_ahead=24)
    client = csr_client
    client.raise_request_exception = False
    response = client.post(f"/csr/customers/{customer.pk}/{path}", data)
    assert response.status_code == 404


def test_unavailability_refusals_name_the_fields_as_the_form_labels_them(csr_client):
    """The form says From and To; the refusal said 'end: end must be after start.'"""
    customer, participation = upcoming(hours_ahead=48)
    url = f"/csr/customers/{customer.pk}/unavailability/"
    day = (timezone.now() + dt.timedelta(days=3)).date()
    body = csr_client.post(url, {"enrollment": participation.enrollment_id, "start": f"{day}T20:00",
                                 "end": f"{day}T08:00"}, follow=True).content.decode()
    assert "Unavailability not recorded: To must be after From." in body
    assert "end must be after start" not in body and "end:" not in body
    body = csr_client.post(url, {"enrollment": participation.enrollment_id, "start": "2020-07-01T08:00",
                                 "end": "2020-07-01T20:00"}, follow=True).content.decode()
    assert "Unavailability not recorded: The period is already over: To must be later than now." in body
    assert not Unavailability.objects.exists()


def test_unreadable_unavailability_times_are_named_as_the_form_labels_them(csr_client):
    """The form says From and To; a text that is not a date and time was refused as 'start and end must be dates and
    times', not saying which box was wrong nor naming it as labelled."""
    customer, participation = upcoming(hours_ahead=48)
    url = f"/csr/customers/{customer.pk}/unavailability/"
    day = (timezone.now() + dt.timedelta(days=3)).date()

    def refusal(start, end):
        body = unescape(csr_client.post(url, {"enrollment": participation.enrollment_id, "start": start, "end": end},
                                        follow=True).content.decode())
        (message,) = re.findall(r"Unavailability not recorded: [^<]*", body)
        return message

    rule = "the period's start and end must be dates and times (YYYY-MM-DDTHH:MM) in the program's time zone."
    assert refusal("tomorrow", "") == f"Unavailability not recorded: From ('tomorrow') is not a date and time, To " \
                                      f"is empty; {rule}"
    assert refusal(f"{day}T08:00", "8pm") == f"Unavailability not recorded: To ('8pm') is not a date and time; {rule}"
    assert not Unavailability.objects.exists()


def test_a_repeated_autumn_time_is_refused_with_what_a_csr_can_do(csr_client):
    """01:30 on 2026-11-01 happens twice in New York. The refusal said 'Type the offset to pick one: "01:30 -04:00"',
    which the page's date-and-time boxes cannot take; it now says what the CSR can do on this page or elsewhere."""
    sub = active_participant(program=ProgramFactory(time_zone="America/New_York"))
    url = f"/csr/customers/{sub.enrollment.account.customer_id}/unavailability/"
    with time_machine.travel(dt.datetime(2026, 2, 1, tzinfo=dt.UTC)):
        response = csr_client.post(url, {"enrollment": sub.enrollment_id, "start": "2026-11-01T01:30",
                                         "end": "2026-11-01T03:00"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Unavailability not recorded: From: 2026-11-01 01:30 happens twice in America/New_York: the clocks go back "
        "that night and repeat this hour. The From and To boxes cannot say which: choose a time before or after the "
        "repeated hour, or declare the period in the admin's Unavailability form, typing \"01:30 -04:00\" for the "
        "first (EDT) or \"01:30 -05:00\" for the second (EST)."]
    assert not Unavailability.objects.exists()
