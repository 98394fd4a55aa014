"""A live cpm server, two aggregators with client credentials (VENs), a business-logic client, and the
``openadr3-client`` library (OpenADR 3.0.1) talking to them over HTTP; a local webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture(autouse=True)
def _plain_http(settings, monkeypatch):
    """The live server speaks plain HTTP; oauthlib (the client's token fetch) refuses it unless told."""
    settings.SECURE_SSL_REDIRECT = False
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def tomorrow_la(hour: int) -> dt.datetime:
    """Tomorrow at ``hour`` in Los Angeles (the live server decides with the real clock)."""
    day = (dt.datetime.now(LA) + dt.timedelta(days=1)).date()
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=LA)


class World:
    """What the tests drive: the program, its aggregators (VENs) with devices, credentials, the server URL."""

    def __init__(self, live_server):
        from cpm.openadr3 import services
        from devices.models import Aggregator
        from tests.actors import TEST_ACTOR
        from tests.factories.enrollments import active_participant, staff_user
        from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

        self.url = live_server.url
        self.base = f"{live_server.url}/openadr3"
        self.token_url = f"{self.base}/auth/token"
        today = dt.datetime.now(LA).date()
        self.program = ProgramFactory(code="smart-ac", name="Smart AC Rewards")
        SeasonFactory(program=self.program, name="Now", start_date=today - dt.timedelta(days=30),
                      end_date=today + dt.timedelta(days=120))
        ParticipationRuleFactory(program=self.program, effective_from=today - dt.timedelta(days=365),
                                 weekends_allowed=True, holidays_allowed=True)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        user_model = get_user_model()
        self.aggregators = {}
        self.devices: dict[str, list] = {}
        self.credentials: dict[str, tuple[str, str]] = {}
        seen = real_now()
        for code in ("agg-a", "agg-b"):
            user = user_model.objects.create_user(f"{code}-api", password="pw-Agg-123456")
            user.groups.add(Group.objects.get(name="Aggregator"))
            agg = Aggregator.objects.create(code=code, name=code.upper(), api_user=user)
            self.aggregators[code] = agg
            self.devices[code] = []
            for n in range(2):
                sub = active_participant(program=self.program, device_kwargs={
                    "aggregator": agg, "aggregator_device_id": f"{code}-t{n}", "last_seen_at": seen})
                self.devices[code].append(sub.device)
            self.credentials[code] = services.credentials_issue(aggregator=agg, now=seen, actor=TEST_ACTOR)
        self.bl_user = staff_user("Program administrator", "utility-bl")
        self.credentials["bl"] = _application(self.bl_user, "utility BL")
        self.program.refresh_from_db()

    # -- clients
    def bl(self, scopes=None):
        from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
        from openadr3_client.version import OADRVersion

        cid, secret = self.credentials["bl"]
        return BusinessLogicHttpClientFactory.create_http_bl_client(
            vtn_base_url=self.base, client_id=cid, client_secret=secret, token_url=self.token_url,
            scopes=scopes or ["read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"],
            version=OADRVersion.OADR_301)

    def ven(self, code: str, scopes=None):
        from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
        from openadr3_client.version import OADRVersion

        cid, secret = self.credentials[code]
        return VirtualEndNodeHttpClientFactory.create_http_ven_client(
            vtn_base_url=self.base, client_id=cid, client_secret=secret, token_url=self.token_url,
            scopes=scopes or ["read_targets", "read_ven_objects", "write_reports", "write_subscriptions",
                              "write_vens"],
            version=OADRVersion.OADR_301)

    def token(self, who: str, scope: str | None = None) -> str:
        """A bearer token by a plain client-credentials request (what any OAuth client does)."""
        import requests

        cid, secret = self.credentials[who]
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        response = requests.post(self.token_url, data=data, auth=(cid, secret), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def http(self, method: str, path: str, token: str | None, **kwargs):
        import requests

        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kwargs)

    def register_vens(self):
        """Both aggregators register their VEN through the library; returns {code: ExistingVen}."""
        from openadr3_client.oadr301.models.ven.ven import NewVen

        return {code: self.ven(code).vens.create_ven(new_ven=NewVen(ven_name=f"ven-{code}"))
                for code in self.aggregators}

    def scheduled_event(self, *, hours=(15, 17), name="Heat wave", target_kw=None):
        """A cpm event created and scheduled through cpm's services (the reservation runs, then publication)."""
        from events import services as event_services
        from tests.actors import TEST_ACTOR

        now = real_now()
        event = event_services.event_create(program=self.program, name=name, start=tomorrow_la(hours[0]),
                                            end=tomorrow_la(hours[1]), target_kw=target_kw, now=now,
                                            actor=TEST_ACTOR)
        return event_services.event_schedule(event=event, now=now, actor=TEST_ACTOR)


def _application(user, name: str) -> tuple[str, str]:
    from oauth2_provider.models import Application

    secret = "bl-secret-" + "x" * 30
    app = Application.objects.create(name=name, user=user, client_type=Application.CLIENT_CONFIDENTIAL,
                                     authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                                     client_secret=secret)
    return app.client_id, secret


@pytest.fixture
def world(live_server, transactional_db):
    return World(live_server)


class Receiver:
    """A local webhook endpoint recording every POST (path, headers, parsed JSON, raw body)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.status = 200
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.calls.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                           "json": json.loads(raw)})
                    receiver.cond.notify_all()
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        with self.cond:
            self.cond.wait_for(lambda: any(predicate(c) for c in self.calls), timeout=timeout)
            return [c for c in self.calls if predicate(c)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
