"""What an SMS provider answers that it should not: a 2xx whose JSON is not an object, a connection the provider
drops, a URL that is not one (each fails its own message in words; the batch goes on, nothing is left SENDING)."""

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from cpm.notifications import channels, services
from cpm.notifications.choices import MessageKind, MessageStatus
from cpm.notifications.models import Message
from tests.actors import TEST_ACTOR

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)


class _Provider(BaseHTTPRequestHandler):
    answers: dict = {}

    def do_POST(self):  # noqa: N802 - http.server's name
        import json
        to = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["to"]
        answer = self.answers.get(to, b'{"id": "SM1"}')
        if answer is None:  # the provider drops the connection without an answer
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider(settings):
    server = HTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.HttpSmsBackend"
    settings.CPM_SMS_HTTP_URL = f"http://127.0.0.1:{server.server_port}/messages"
    settings.CPM_SMS_HTTP_TOKEN = "secret-token"
    yield _Provider
    server.shutdown()
    server.server_close()


def test_a_provider_answer_that_is_not_a_json_object_fails_that_message_only(program, provider):
    provider.answers = {"+15035550102": b'["queued"]', "+15035550103": b"null", "+15035550104": None}
    subs = [participant(program, first=f"C{i}", last="Doe", email="", phone=f"+1503555010{i}") for i in (1, 2, 3, 4)]
    reserved_event(program, subs)
    services.notifications_tick(now=SENT_AT, actor=TEST_ACTOR)
    counts = services.messages_send(ids=services.messages_due(now=SENT_AT), now=SENT_AT)
    assert counts == {"sent": 1, "failed": 3, "suppressed": 0}
    by_phone = {m.recipient: m for m in Message.objects.filter(kind=MessageKind.EVENT_NOTICE)}
    assert (by_phone["+15035550101"].status, by_phone["+15035550101"].provider_id) == (MessageStatus.SENT, "SM1")
    for phone in ("+15035550102", "+15035550103"):
        assert (by_phone[phone].status, by_phone[phone].detail) == (
            MessageStatus.FAILED, "The SMS provider's answer is not a JSON object with the message's id")
    assert by_phone["+15035550104"].status == MessageStatus.FAILED
    assert by_phone["+15035550104"].detail.startswith("SMS provider unreachable: ")
    assert not Message.objects.filter(status=MessageStatus.SENDING).exists()


def test_an_sms_provider_url_that_is_not_a_url_fails_each_message_in_words(settings):
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.HttpSmsBackend"
    settings.CPM_SMS_HTTP_URL = ""
    [result] = channels.sms_backend().send([channels.Outgoing("k1", "sms", "+15035550101", "", "hi")])
    assert (result.ok, result.error) == (False, "CPM_SMS_HTTP_URL is not a valid URL: unknown url type: ''")
