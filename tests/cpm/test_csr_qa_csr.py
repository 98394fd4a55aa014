"""CSR page defects found by QA (csr): what the search says it found, labels in the histories, unavailability
double-submits and absurd dates, re-setting a contact preference."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
from django.utils import timezone

from cpm.base.audit import audit_record
from cpm.base.states import transition
from cpm.csr.selectors import SEARCH_LIMIT
from enrollments.choices import ENROLLMENT_TRANSITIONS, EnrollmentStatus
from events.choices import EventStatus, ParticipationStatus
from tests.cpm.test_csr_issue17 import csr  # noqa: F401  (fixture)
from tests.cpm.test_csr_money_dates_search import _numbered_customer
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def test_a_search_matching_more_than_the_limit_says_so_not_a_false_count(csr):  # noqa: F811
    """62 customers matched 'ACC-' and the page said '50 customers found': the CSR believed there were 50. It now
    says more than 50 match, 50 are shown, and how to narrow the search."""
    for i in range(SEARCH_LIMIT + 12):
        _numbered_customer(f"ACC-{i}", f"MTR-{i}")
    response = csr.get("/csr/", {"q": "ACC-"})
    text = _text(response)
    assert len(response.context["results"]) == SEARCH_LIMIT
    assert "50 customers found" not in text
    assert f"More than {SEARCH_LIMIT} customers match “ACC-”; {SEARCH_LIMIT} are shown." in text
    assert "Type more of the name, number or address to narrow the search." in text


def test_a_search_matching_exactly_the_limit_gives_the_exact_count(csr):  # noqa: F811
    for i in range(SEARCH_LIMIT):
        _numbered_customer(f"ACC-{i}", f"MTR-{i}")
    text = _text(csr.get("/csr/", {"q": "ACC-"}))
    assert f"{SEARCH_LIMIT} customers found for “ACC-”" in text and "More than" not in text


def test_a_one_character_query_asks_for_two_not_no_customer_matches(csr):  # noqa: F811
    """'a' answered '0 customers found … No customer matches' though nothing was searched; it now asks for at
    least two characters."""
    _numbered_customer("A-1", "M-1")
    text = _text(csr.get("/csr/", {"q": "A"}))
    assert "0 customers found" not in text and "No customer matches" not in text
    assert "Type at least 2 characters to search (“A” is too short)." in text


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end)]


def test_histories_show_status_labels_not_codes(csr):  # noqa: F811
    """The event history read 'Reserved opted_out' (the status's code) and the enrollment history 'new→ (csr)' for
    the request's creation (an arrow to nothing). They now read 'Opted out' and 'Created (csr)'."""
    program = ProgramFactory(time_zone="America/New_York")
    sub = active_participant(program=program)
    enrollment = sub.enrollment
    start = (timezone.now() - dt.timedelta(days=3)).replace(microsecond=0)
    event = EventFactory(program=program, name="Heat wave", start=start, end=start + dt.timedelta(hours=2),
                         notification_at=start - dt.timedelta(hours=1), status=EventStatus.COMPLETED)
    ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT)
    enrollment.status = EnrollmentStatus.REQUESTED
    enrollment.save()
    now = timezone.now()
    audit_record(obj=enrollment, action="create", now=now, actor=None, changes={"source": "csr"})
    for to in (EnrollmentStatus.PENDING_APPROVAL, EnrollmentStatus.ACTIVE):
        transition(obj=enrollment, to=to, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=None, reason="ok")
    text = _text(csr.get(f"/csr/customers/{enrollment.account.customer_id}/"))
    history = _section(text, "Event history", "Unavailability")
    assert "Heat wave" in history and "Opted out" in history and "opted_out" not in history
    enrollments = _section(text, "Enrollments Program", "Upcoming events")
    assert "new→ " not in enrollments and "Created (" in enrollments


def _csr_participant(csr):  # noqa: F811
    program = ProgramFactory(name="Smart Savers", time_zone="America/Los_Angeles")
    sub = active_participant(program=program)
    return sub.enrollment, f"/csr/customers/{sub.enrollment.account.customer_id}/unavailability/"


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_double_submitted_unavailability_is_recorded_once(csr):  # noqa: F811
    """The same period posted twice (a double click, a reload) was recorded twice, with two audit entries; the
    second post now changes nothing and says the period was already recorded."""
    from cpm.models import AuditEntry
    from events.models import Unavailability

    enrollment, url = _csr_participant(csr)
    year = timezone.now().year + 1
    data = {"enrollment": enrollment.pk, "start": f"{year}-01-05T10:00", "end": f"{year}-01-05T18:00",
            "reason": "Away"}
    first = csr.post(url, data, follow=True)
    assert _messages(first) == ["Unavailability recorded for Smart Savers."]
    second = csr.post(url, data, follow=True)
    assert _messages(second) == ["Unavailability already recorded for Smart Savers: nothing changed."]
    assert Unavailability.objects.filter(enrollment=enrollment).count() == 1
    assert AuditEntry.objects.filter(object_type="events.unavailability", action="create").count() == 1


def test_an_unavailability_ending_years_ahead_is_refused_naming_the_field(csr):  # noqa: F811
    """A period to 9999-12-31 was recorded: the customer's devices were never called again while the enrollment
    looked active. A period now lasts at most a year (from its start, or from now for one under way; a short period
    on a day years ahead stays welcome: ``test_local_time_typing``), refused naming To as the form labels it."""
    from events.models import Unavailability

    enrollment, url = _csr_participant(csr)
    year = timezone.now().year + 1
    response = csr.post(url, {"enrollment": enrollment.pk, "start": f"{year}-01-05T10:00",
                              "end": "9999-12-31T00:00"}, follow=True)
    [message] = _messages(response)
    assert message.startswith("Unavailability not recorded: To is more than a year after From")
    assert not Unavailability.objects.exists()


@pytest.mark.parametrize("status", [EnrollmentStatus.UNENROLLED, EnrollmentStatus.CANCELLED,
                                    EnrollmentStatus.REJECTED])
def test_unavailability_for_an_ended_enrollment_is_refused_in_words(csr, status):  # noqa: F811
    """The form lists active enrollments only, but a post naming one of the customer's ended enrollments was
    recorded ('Unavailability recorded for Smart Savers.') for devices no longer in the program; it is now
    refused saying the enrollment has ended."""
    from events.models import Unavailability

    enrollment, url = _csr_participant(csr)
    enrollment.status = status
    enrollment.save()
    year = timezone.now().year + 1
    response = csr.post(url, {"enrollment": enrollment.pk, "start": f"{year}-01-05T10:00",
                              "end": f"{year}-01-05T18:00"}, follow=True)
    [message] = _messages(response)
    assert message.startswith("Unavailability not recorded: ")
    assert f"is {status.label.lower()}" in message and "only for an enrollment in the program" in message
    assert not Unavailability.objects.exists()


def test_setting_the_same_contact_preference_again_writes_nothing(csr):  # noqa: F811
    """Posting the preference the customer already has (a double click) wrote an 'update' audit entry from 'none'
    to 'none' and moved its time; the second post now changes and audits nothing."""
    from cpm.models import AuditEntry
    from cpm.notifications.models import ContactPreference

    enrollment, _ = _csr_participant(csr)
    url = f"/csr/customers/{enrollment.account.customer_id}/contact-preference/"
    first = csr.post(url, {"channel": "none"}, follow=True)
    updated_at = ContactPreference.objects.get().updated_at
    second = csr.post(url, {"channel": "none"}, follow=True)
    assert _messages(first) == _messages(second) == ["Messages: No messages for every program."]
    assert ContactPreference.objects.get().updated_at == updated_at
    entries = AuditEntry.objects.filter(object_type="notifications.contactpreference")
    assert [(e.action, e.actor_label) for e in entries] == [("create", "csr")]


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(("path", "data"), [
    (f"/csr/customers/{HUGE}/", None),
    (f"/csr/customers/{HUGE}/enroll/", {"account": "1", "program": "1", "service_point": "1"}),
    (f"/csr/customers/{HUGE}/enrollments/1/unenroll/", {"confirmed": "yes"}),
    ("/csr/customers/{c}/enrollments/" + HUGE + "/unenroll/", {"confirmed": "yes"}),
    (f"/csr/customers/{HUGE}/participations/1/opt-out/", {"confirmed": "yes"}),
    ("/csr/customers/{c}/participations/" + HUGE + "/opt-out/", {"confirmed": "yes"}),
    (f"/csr/customers/{HUGE}/unavailability/", {"enrollment": "1", "start": "2027-01-01T10:00",
                                                 "end": "2027-01-01T12:00"}),
    (f"/csr/customers/{HUGE}/contact-preference/", {"channel": "none", "program": "1"}),
    (f"/csr/customers/{HUGE}/settlements/1/", None),
    ("/csr/customers/{c}/settlements/" + HUGE + "/", None),
])
def test_an_id_in_the_address_too_big_for_any_row_is_not_found_never_a_500(csr, path, data):  # noqa: F811
    """/csr/customers/99999999999999999999999/enroll/ raised OverflowError (HTTP 500): the customer id in the
    address reached a lookup unchecked. Every CSR address now answers 404 for it."""
    enrollment, _ = _csr_participant(csr)
    csr.raise_request_exception = False
    url = path.replace("{c}", str(enrollment.account.customer_id))
    response = csr.get(url) if data is None else csr.post(url, data)
    assert response.status_code == 404


def test_a_nul_character_in_a_typed_reason_is_dropped_never_a_500(csr):  # noqa: F811
    """A reason pasted with a NUL character (\\x00) reached the database: PostgreSQL refuses it in a text column
    (ValueError, an HTTP 500) after the CSR had confirmed. The page now drops it from what the CSR typed."""
    from events.models import OptOut, Unavailability
    from tests.cpm.test_csr_actions import upcoming

    enrollment, url = _csr_participant(csr)
    year = timezone.now().year + 1
    response = csr.post(url, {"enrollment": enrollment.pk, "start": f"{year}-01-05T10:00",
                              "end": f"{year}-01-05T18:00", "reason": "Away\x00 on holiday"}, follow=True)
    assert _messages(response) == ["Unavailability recorded for Smart Savers."]
    assert Unavailability.objects.get().reason == "Away on holiday"

    customer, participation = upcoming(hours_ahead=24)
    response = csr.post(f"/csr/customers/{customer.pk}/participations/{participation.pk}/opt-out/",
                        {"reason": "Party\x00", "confirmed": "yes"}, follow=True)
    assert response.status_code == 200 and OptOut.objects.get().reason == "Party"

    unenroll = f"/csr/customers/{enrollment.account.customer_id}/enrollments/{enrollment.pk}/unenroll/"
    confirm = csr.post(unenroll, {"reason_code": "other", "reason_text": "Moving\x00 out"})
    assert confirm.status_code == 200 and "\x00" not in confirm.content.decode()
    response = csr.post(unenroll, {"reason_code": "other", "reason_text": "Moving\x00 out", "confirmed": "yes"},
                        follow=True)
    assert _messages(response) == ["Unenrolled from Smart Savers."]
    enrollment.refresh_from_db()
    assert enrollment.reason_text == "Moving out"


@pytest.mark.parametrize("typed", ["nan", "inf", "-Infinity", "1e999"])
def test_a_number_answer_that_is_not_finite_is_refused_naming_the_question(client, django_user_model, typed):
    """'nan' or 'inf' typed for "How many homes are in the building?" qualified (any number does) and was stored
    as NaN/Infinity in the answers, which PostgreSQL's JSON refuses (an HTTP 500); it is now refused as not a
    number, naming the question."""
    from cpm.base import roles
    from enrollments.models import Enrollment
    from programs.models import QualificationQuestion
    from tests.cpm.test_csr_page import user_with_role
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
    from tests.factories.enrollments import AccountFactory, ServiceAgreementFactory

    program = ProgramFactory(code="tstat", name="Thermostat Rewards")
    QualificationQuestion.objects.create(program=program, code="units", text="How many homes are in the building?",
                                         answer_type="number", qualifying_answers=[])
    account = AccountFactory()
    sp = ServicePointFactory(premise__service_territory=program.eligible_territories[0]
                             if program.eligible_territories else "SCE", rate_code=(program.eligible_rate_codes or
                                                                                    ["R-1"])[0])
    ServiceAgreementFactory(account=account, service_point=sp)
    device = DeviceFactory()
    DeviceInstallationFactory(device=device, service_point=sp)
    client.force_login(user_with_role(django_user_model, roles.CSR))
    response = client.post(f"/csr/customers/{account.customer_id}/enroll/",
                           {"account": account.pk, "program": program.pk, "service_point": sp.pk,
                            "devices": [device.pk], "q_units": typed}, follow=True)
    [message] = _messages(response)
    assert message.startswith("Not enrolled in Thermostat Rewards:") and "'units'" in message
    assert "must be a number" in message
    assert not Enrollment.objects.exists()


def test_ending_a_request_not_yet_active_says_it_was_cancelled_not_unenrolled(csr):  # noqa: F811
    """A pending request ended from the page is cancelled (the service's rule), but the page said 'Unenrolled from
    Smart Savers.'; it now says the request was cancelled, as the enrollments table then shows."""
    enrollment, _ = _csr_participant(csr)
    enrollment.status = EnrollmentStatus.PENDING_APPROVAL
    enrollment.save()
    url = f"/csr/customers/{enrollment.account.customer_id}/enrollments/{enrollment.pk}/unenroll/"
    response = csr.post(url, {"reason_code": "customer_request", "confirmed": "yes"}, follow=True)
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.CANCELLED
    assert _messages(response) == ["Enrollment request cancelled for Smart Savers (it was not yet active)."]
