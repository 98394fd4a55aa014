"""The channels: file outboxes (one file per message key), the HTTP SMS adapter, SMTP failures, bounces, retries,
and chunked sending as a job."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.core import mail

from cpm.models import AuditEntry, Job, JobChunk
from cpm.notifications import channels, services
from cpm.notifications.choices import ContactChoice, MessageKind, MessageStatus
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_chunk, send_due
from tests.actors import TEST_ACTOR
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=UTC)
S = MessageStatus


def plan_and_send(now=SENT_AT, chunk_size=None):
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        return send_due(now=now, chunk_size=chunk_size)


def test_file_backends_write_one_file_per_message_key(settings, program, tmp_path):
    settings.MAILERS = {**settings.MAILERS, "notifications": {
        "BACKEND": "cpm.notifications.channels.OutboxEmailBackend"}}
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.FileSmsBackend"
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com", phone="+15035550101")
    services.contact_preference_set(customer=ana.enrollment.account.customer, channel=ContactChoice.BOTH,
                                    now=SENT_AT, actor=TEST_ACTOR)
    reserved_event(program, [ana])
    plan_and_send()
    outbox = Path(settings.CPM_NOTIFY_OUTBOX_DIR)
    [eml] = (outbox / "email").iterdir()
    [txt] = (outbox / "sms").iterdir()
    notice = Message.objects.get(channel="email", kind=MessageKind.EVENT_NOTICE)
    assert eml.name == notice.key.replace(":", "_") + ".eml"
    text = eml.read_text()
    assert "To: ana@example.com" in text and f"X-CPM-Message-Key: {notice.key}" in text
    assert txt.read_text().startswith("To: +15035550101\n\nCool Rewards: event Wed Jul 15, 2026 3:00 PM to 6:00 PM")
    # A second hand-off of the same keys (a chunk replayed after its worker died) writes nothing more.
    again = [channels.Outgoing(m.key, m.channel, m.recipient, m.subject, m.body) for m in Message.objects.filter(
        kind=MessageKind.EVENT_NOTICE)]
    assert all(r.ok for r in channels.send(again))
    assert len(list((outbox / "email").iterdir())) == 1 and len(list((outbox / "sms").iterdir())) == 1


class _Provider(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Provider.requests.append((body, dict(self.headers)))
        if body["to"].endswith("9999"):
            self.send_response(500)
            self.end_headers()
            return
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": f"SM{len(_Provider.requests):04d}"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def provider(settings):
    server = HTTPServer(("127.0.0.1", 0), _Provider)
    _Provider.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.HttpSmsBackend"
    settings.CPM_SMS_HTTP_URL = f"http://127.0.0.1:{server.server_port}/messages"
    settings.CPM_SMS_HTTP_TOKEN = "secret-token"
    yield _Provider
    server.shutdown()


def test_http_sms_adapter_sends_the_key_and_records_the_provider_id_or_the_failure(program, provider):
    ok = participant(program, first="Ana", last="Lopez", email="", phone="+15035550101")
    bad = participant(program, first="Ben", last="Okafor", email="", phone="+15035559999")
    reserved_event(program, [ok, bad])
    plan_and_send()
    sent = Message.objects.get(customer=ok.enrollment.account.customer, kind=MessageKind.EVENT_NOTICE)
    failed = Message.objects.get(customer=bad.enrollment.account.customer, kind=MessageKind.EVENT_NOTICE)
    assert (sent.status, sent.channel, failed.status, failed.detail) == (
        S.SENT, "sms", S.FAILED, "HTTP 500 from the SMS provider")
    assert sent.provider_id.startswith("SM")
    body, headers = next(r for r in provider.requests if r[0]["to"] == "+15035550101")
    assert body["reference"] == sent.key and headers["Idempotency-Key"] == sent.key
    assert headers["Authorization"] == "Bearer secret-token"
    # A FAILED message is queued again by an operator and goes on the next tick.
    services.message_retry(message=failed, now=SENT_AT + dt.timedelta(minutes=5), actor=TEST_ACTOR)
    failed.refresh_from_db()
    assert (failed.status, failed.due_at) == (S.QUEUED, SENT_AT + dt.timedelta(minutes=5))


def test_smtp_failure_is_recorded_in_words_and_a_bounce_later(settings, program):
    settings.MAILERS = {**settings.MAILERS, "notifications": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": {"host": "127.0.0.1", "port": 1,
                                                                              "timeout": 2}}}
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    reserved_event(program, [ana])
    plan_and_send()
    notice = Message.objects.get(kind=MessageKind.EVENT_NOTICE)
    assert notice.status == S.FAILED and notice.detail.startswith("ConnectionRefusedError")
    settings.MAILERS = {**settings.MAILERS, "notifications": {
        "BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    services.message_retry(message=notice, now=SENT_AT + dt.timedelta(minutes=1), actor=TEST_ACTOR)
    plan_and_send(SENT_AT + dt.timedelta(minutes=1))
    notice.refresh_from_db()
    assert notice.status == S.SENT and notice.attempts == 2 and len(mail.outbox) == 1
    services.message_bounce(message=notice, reason="550 mailbox unavailable", now=SENT_AT + dt.timedelta(hours=1),
                            actor=TEST_ACTOR)
    notice.refresh_from_db()
    assert (notice.status, notice.detail) == (S.BOUNCED, "550 mailbox unavailable")
    assert AuditEntry.objects.filter(object_type="notifications.message", object_id=str(notice.pk),
                                     to_status="bounced", reason="550 mailbox unavailable").count() == 1


def test_notices_go_in_job_chunks_and_a_redelivered_chunk_does_nothing(program):
    subs = [participant(program, first=f"C{i}", last=f"Customer{i}", email=f"c{i}@example.com") for i in range(5)]
    reserved_event(program, subs)
    handle = plan_and_send(chunk_size=2)
    job = Job.objects.get(pk=handle.job_id)
    assert (job.kind, job.status, job.chunks_total, job.chunks_done) == ("notifications", "completed", 3, 3)
    assert [c.result for c in JobChunk.objects.filter(job=job).order_by("index")] == [
        {"sent": 2, "failed": 0, "suppressed": 0}, {"sent": 2, "failed": 0, "suppressed": 0},
        {"sent": 1, "failed": 0, "suppressed": 0}]
    assert len(mail.outbox) == 5
    first = JobChunk.objects.filter(job=job).order_by("index").first()
    assert send_chunk(**first.kwargs, job_chunk_id=first.pk) is None  # already done
    assert len(mail.outbox) == 5
    assert sorted(m.to[0] for m in mail.outbox) == [f"c{i}@example.com" for i in range(5)]


def test_one_sending_job_at_a_time(program):
    reserved_event(program, [participant(program, first="Ana", last="Lopez", email="ana@example.com")])
    services.notifications_tick(now=SENT_AT, actor=TEST_ACTOR)
    first = send_due(now=SENT_AT)  # its chunks would go on commit: the job stays pending here
    assert first is not None and send_due(now=SENT_AT + dt.timedelta(minutes=1)) is None
    assert Job.objects.filter(kind="notifications").count() == 1
