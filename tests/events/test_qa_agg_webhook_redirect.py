"""A webhook that answers with a redirect (QA, agg): ``deliver_http`` followed it, and urllib turns a redirected POST
into a GET without the body, so a 302 to a sign-in page (a moved or misconfigured endpoint) answered 200 and the
dispatch message was marked DELIVERED though the aggregator never received it. A redirect is not a delivery: the
attempt fails with the status (``HTTP 302``) and the message is retried, then FAILED."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from events.services import dispatch


@pytest.fixture
def redirecting_webhook():
    calls: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bytes = b""):
            calls.append((self.command, self.path, body))
            if self.path == "/dr":
                self.send_response(302)
                self.send_header("Location", "/login")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        def do_POST(self):
            self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def do_GET(self):
            self._answer()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


def test_a_redirect_is_not_a_delivery(redirecting_webhook):
    url, calls = redirecting_webhook
    status = dispatch.deliver_http(f"{url}/dr", b'{"kind": "dispatch"}', {"Content-Type": "application/json"}, 5)
    assert status == 302
    assert calls == [("POST", "/dr", b'{"kind": "dispatch"}')]  # the redirect was not followed (no GET /login)
