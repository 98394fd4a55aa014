"""One HTTP/1.1 keep-alive connection carries 1,000 OpenADR requests to the live server."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_keep_alive_connection_carries_1000_requests(world):
    world.register_vens()
    event = world.scheduled_event()
    token = world.token("agg-a")
    parsed = urlparse(world.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Connection": "keep-alive"}
    paths = ["/openadr3/events", f"/openadr3/events/{event.pk}", "/openadr3/programs", "/openadr3/vens"]
    conn.request("GET", paths[0], headers=headers)
    first = conn.getresponse()
    assert first.status == 200 and first.version == 11
    first.read()
    sock = conn.sock
    local = sock.getsockname()
    statuses = [first.status]
    for n in range(1, 1000):
        conn.request("GET", paths[n % len(paths)], headers=headers)
        response = conn.getresponse()
        body = response.read()
        statuses.append(response.status)
        assert conn.sock is sock, f"request {n + 1} was sent on a new connection"
        if n % len(paths) == 1:
            assert json.loads(body)["id"] == str(event.pk)
    assert sock.getsockname() == local
    assert statuses == [200] * 1000
    conn.close()
