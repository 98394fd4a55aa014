"""The demo's OpenADR 3 aggregator: the thermostat cloud is a VEN of cpm's VTN (``/openadr3``). It gets client
credentials, a bearer token from the token endpoint, registers its VEN, reads the events targeted at it when they
are dispatched and reports each device's outcome back as an OpenADR report, which cpm turns into participation
outcomes (the same services the aggregator API uses).

The requests go through the whole HTTP stack of cpm (middleware, OAuth bearer authentication, scopes, views) with
Django's in-process client, in the demo's simulated-time transaction: no socket and no server to start. The tests
(``tests/openadr3``) drive the same VTN over real HTTP with the ``openadr3-client`` library.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class VenStats:
    aggregator: str = ""
    ven_name: str = ""
    client_id: str = ""
    polls: int = 0
    events: dict[str, int] = field(default_factory=dict)  # event id -> modification number last seen
    reports: int = 0
    outcomes: int = 0
    recorded: int = 0

    def line(self) -> str:
        return (f"OpenADR 3: aggregator {self.aggregator} (VEN {self.ven_name}) received {len(self.events)} events "
                f"through the VTN (/openadr3, {self.polls} polls with an OAuth bearer token) and reported back "
                f"{self.outcomes} device outcomes in {self.reports} OpenADR reports ({self.recorded} recorded as "
                "participation outcomes)")


class DemoVen:
    """One aggregator as an OpenADR 3 VEN client of the VTN."""

    def __init__(self, aggregator, *, now: dt.datetime, actor: Any) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.test import Client

        from cpm.base.roles import AGGREGATOR
        from cpm.openadr3.services import credentials_issue
        from devices.services import aggregator_upsert

        if aggregator.api_user_id is None:
            user = get_user_model().objects.create_user(f"{aggregator.code}-api", password=None)
            user.groups.add(Group.objects.get(name=AGGREGATOR))
            aggregator, _ = aggregator_upsert(code=aggregator.code, values={"api_user": user}, now=now, actor=actor)
        self.aggregator = aggregator
        client_id, secret = credentials_issue(aggregator=aggregator, now=now, actor=actor)
        self.stats = VenStats(aggregator=aggregator.code, ven_name=f"ven-{aggregator.code}", client_id=client_id)
        self.http = Client(HTTP_HOST="localhost")
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        token = self._ok(self.http.post("/openadr3/auth/token", {"grant_type": "client_credentials"},
                                        HTTP_AUTHORIZATION=f"Basic {basic}", secure=True), 200)
        self.auth = f"Bearer {token['access_token']}"
        self._call("POST", "/openadr3/vens", {"venName": self.stats.ven_name}, expect=201)

    @staticmethod
    def _ok(response, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"OpenADR 3 VTN answered {response.status_code}: {response.content[:300]!r}")
        return json.loads(response.content)

    def _call(self, method: str, path: str, body: dict | None = None, *, expect: int = 200) -> Any:
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": self.auth, "secure": True}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return self._ok(getattr(self.http, method.lower())(path, **kwargs), expect)

    def poll(self) -> list[dict]:
        """Read every event targeted at this VEN (pages of 50); remember the modification numbers seen."""
        events, skip = [], 0
        while True:
            page = self._call("GET", f"/openadr3/events?skip={skip}&limit=50")
            events += page
            if len(page) < 50:
                break
            skip += 50
        self.stats.polls += 1
        for e in events:
            self.stats.events[e["id"]] = e["modificationNumber"]
        return events

    def report(self, event_id: int, outcomes: dict[str, str], *, start: dt.datetime, end: dt.datetime) -> None:
        """One OpenADR report for an event: each resource's outcome (``OPERATING_STATE``) over the event window."""
        event = next((e for e in self.poll() if e["id"] == str(event_id)), None)
        if event is None:
            raise RuntimeError(f"event {event_id} is not targeted at {self.stats.ven_name}")
        period = {"start": start.isoformat(), "duration": f"PT{int((end - start).total_seconds() // 60)}M"}
        body = {"programID": event["programID"], "eventID": event["id"], "clientName": self.stats.ven_name,
                "reportName": f"outcomes of event {event_id}",
                "resources": [{"resourceName": name, "intervalPeriod": period,
                               "intervals": [{"id": 0, "payloads": [{"type": "OPERATING_STATE",
                                                                     "values": [state.upper()]}]}]}
                              for name, state in sorted(outcomes.items())]}
        self._call("POST", "/openadr3/reports", body, expect=201)
        from cpm.openadr3.models import Report

        results = Report.objects.filter(ven__aggregator=self.aggregator).order_by("-pk").values_list(
            "results", flat=True).first() or {}
        self.stats.reports += 1
        self.stats.outcomes += len(outcomes)
        self.stats.recorded += sum(1 for r in (results.get("outcomes") or {}).values() if r in ("recorded",
                                                                                                 "unchanged"))
