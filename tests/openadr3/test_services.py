"""The VTN's services and selectors without a server: webhook delivery with retries, constant-query lists, refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.base.errors import ConflictError, DomainValidationError, PermissionDenied
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory

NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def notification(db):
    from cpm.openadr3.models import Notification, Subscription

    sub = Subscription.objects.create(client_id="c", client_name="utility", created_at=NOW, updated_at=NOW,
                                      object_operations=[{"objects": ["EVENT"], "operations": ["POST"],
                                                          "callbackUrl": "http://hook.example/x",
                                                          "bearerToken": "secret-1"}])
    return Notification.objects.create(subscription=sub, callback_url="http://hook.example/x",
                                       bearer_token="secret-1", object_type="EVENT", operation="POST",
                                       object_id="7", body='{"objectType":"EVENT","operation":"POST"}',
                                       created_at=NOW)


def test_a_webhook_is_retried_until_delivered(notification, monkeypatch):
    from cpm.openadr3 import services
    from cpm.openadr3.tasks import deliver_notification

    sent = []

    def flaky(url, body, headers, timeout):
        sent.append((url, body, headers["Authorization"]))
        if len(sent) < 3:
            raise OSError("connection refused")
        return 204

    monkeypatch.setattr(services, "deliver_http", flaky)
    deliver_notification.delay(notification_id=notification.pk)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("delivered", 3, "")
    assert sent == [("http://hook.example/x", b'{"objectType":"EVENT","operation":"POST"}', "Bearer secret-1")] * 3


def test_a_webhook_fails_after_the_last_attempt_and_is_not_sent_again(notification, monkeypatch, settings):
    from cpm.models import AuditEntry
    from cpm.openadr3 import services

    settings.OPENADR3_NOTIFY_ATTEMPTS = 2
    monkeypatch.setattr(services, "deliver_http", lambda *a: 500)
    for _ in range(3):
        services.notification_deliver(notification=notification, now=NOW, actor=TEST_ACTOR)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("failed", 2, "HTTP 500")
    assert AuditEntry.objects.filter(object_id=str(notification.pk), to_status="failed").count() == 1


def test_credentials_need_an_api_user(db):
    from cpm.openadr3 import services

    with pytest.raises(ConflictError, match="no API user"):
        services.credentials_issue(aggregator=AggregatorFactory(code="lonely"), now=NOW, actor=TEST_ACTOR)


def test_randomized_start_is_bounded(db):
    from cpm.openadr3 import services
    from tests.factories.programs import ProgramFactory

    with pytest.raises(DomainValidationError, match="86,400"):
        services.program_settings_set(program=ProgramFactory(), randomize_start_seconds=90000, now=NOW,
                                      actor=TEST_ACTOR)


def test_an_openadr_event_needs_the_capability_to_manage_events(db):
    from cpm.openadr3 import services
    from tests.factories.enrollments import staff_user
    from tests.factories.programs import ProgramFactory

    csr = staff_user("CSR", "carol")
    with pytest.raises(PermissionDenied, match="openadr3.event.create"):
        services.oadr_event_create(program=ProgramFactory(), data={}, now=NOW, actor=csr)


def test_event_list_runs_a_constant_number_of_queries(db, django_assert_max_num_queries):
    from cpm.openadr3 import selectors
    from cpm.openadr3.models import OadrEvent, OadrEventTarget, Ven
    from tests.factories.events import EventFactory
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory()
    aggs = [AggregatorFactory(code=f"a{n}") for n in range(3)]
    for agg in aggs:
        Ven.objects.create(aggregator=agg, ven_name=f"ven-{agg.code}", created_at=NOW, updated_at=NOW)

    def publish(n):
        for _ in range(n):
            event = EventFactory(program=program, status="scheduled")
            oadr = OadrEvent.objects.create(event=event, program=program, revision=1, body={"programID": "1"},
                                            created_at=NOW, updated_at=NOW)
            for agg in aggs:
                OadrEventTarget.objects.create(oadr_event=oadr, aggregator=agg, resource_names=[f"{agg.code}-1"])

    client = selectors.Client(kind="bl", user=None, client_id="x", scopes=frozenset(), aggregator=None)
    ven_client = selectors.Client(kind="ven", user=None, client_id="y", scopes=frozenset(), aggregator=aggs[1])
    publish(2)
    with django_assert_max_num_queries(4):
        few = selectors.events_list(client=client, program_id=None, targets=None, skip=0, limit=50)
    publish(20)
    with django_assert_max_num_queries(4):
        many = selectors.events_list(client=client, program_id=None, targets=None, skip=0, limit=50)
    with django_assert_max_num_queries(4):
        mine = selectors.events_list(client=ven_client, program_id=None, targets=None, skip=0, limit=50)
    assert (len(few), len(many), len(mine)) == (2, 22, 22)
    assert many[0]["targets"][0]["values"] == ["ven-a0", "ven-a1", "ven-a2"]
    assert mine[0]["targets"] == [{"type": "VEN_NAME", "values": ["ven-a1"]},
                                  {"type": "RESOURCE_NAME", "values": ["a1-1"]}]


def test_durations_and_instants_parse_as_the_spec_writes_them():
    from cpm.openadr3 import documents as docs

    assert docs.iso_duration(dt.timedelta(hours=3, minutes=30)) == "PT3H30M"
    assert docs.iso_duration(dt.timedelta(days=1, seconds=5)) == "P1DT5S"
    assert docs.parse_iso_duration("PT90M", "d") == dt.timedelta(minutes=90)
    assert docs.parse_instant("2026-07-15T15:00:00-07:00", "s") == dt.datetime(2026, 7, 15, 22, tzinfo=dt.UTC)
    with pytest.raises(DomainValidationError, match="offset"):
        docs.parse_instant("2026-07-15T15:00:00", "start")
    with pytest.raises(DomainValidationError, match="ISO 8601"):
        docs.parse_iso_duration("3 hours", "duration")
