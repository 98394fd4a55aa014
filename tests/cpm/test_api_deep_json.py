"""A JSON body nested thousands deep (valid JSON) is a 400 naming the problem on every JSON door of the REST API,
as on the OpenADR 3 VTN: Python's parser raised RecursionError and the API answered HTTP 500."""

import pytest

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("url", ["/api/v1/events/", "/api/v1/abnormal-days/",
                                 "/api/v1/meter-data-loads/bulk/"])
def test_a_body_nested_too_deep_is_a_400(admin_api, url):
    response = admin_api.post(url, DEEP, content_type="application/json")
    assert response.status_code == 400, (url, response.status_code)
    assert "nested too deeply" in response.json()["detail"]


def test_an_ordinary_body_still_parses(admin_api):
    response = admin_api.post("/api/v1/events/", {"program": "no-such"}, format="json")
    assert response.status_code == 400 and "program" in response.json()
