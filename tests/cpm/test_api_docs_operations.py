"""The API docs (Swagger UI at /api/docs/, ReDoc at /api/redoc/) group every operation by domain with a summary and a
description (issue 17.5). Before, the abnormal-days operations sat under a generated "v1" tag with no summary, and
26 operations (listing customers, enrollments, participations, service agreements, unavailabilities, aggregators;
approving, rejecting, suspending an enrollment; opting a participation out) had no description."""

from __future__ import annotations

import pytest

from cpm.base.schema import DOMAIN_TAGS


@pytest.fixture
def schema(admin_client):
    response = admin_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_every_operation_has_a_domain_a_summary_and_a_description(schema):
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            tags = operation.get("tags") or []
            if len(tags) != 1 or tags[0] not in DOMAIN_TAGS:
                missing.append((method.upper(), path, "tag", tags))
            if not (operation.get("summary") or "").strip():
                missing.append((method.upper(), path, "summary"))
            if not (operation.get("description") or "").strip():
                missing.append((method.upper(), path, "description"))
    assert missing == []
    assert [t["name"] for t in schema["tags"]] == list(DOMAIN_TAGS)


@pytest.mark.django_db
def test_abnormal_days_are_documented_with_the_meter_data(schema):
    operation = schema["paths"]["/api/v1/abnormal-days/"]["get"]
    assert operation["tags"] == ["Meter data"] and operation["summary"] == "List abnormal days"
    opt_out = schema["paths"]["/api/v1/participations/{id}/opt-out/"]["post"]
    assert "opt" in opt_out["description"].lower()


@pytest.mark.django_db
def test_an_abnormal_days_empty_targets_are_documented_as_null(schema, admin_client):
    """A feeder's abnormal day has no service point and no program: the API answers null for their labels, which
    the schema called non-null strings (a strict client rejected the answer)."""
    from settlement.models import AbnormalDay

    props = schema["components"]["schemas"]["AbnormalDay"]["properties"]
    assert props["service_point_id"].get("nullable") is True and props["program_code"].get("nullable") is True
    admin_client.post("/api/v1/abnormal-days/", {"day": "2026-07-13", "scope": "feeder", "network_id": "F-12",
                                                 "reason": "storm"}, content_type="application/json")
    (row,) = admin_client.get("/api/v1/abnormal-days/").json()["results"]
    assert (row["service_point_id"], row["program_code"], AbnormalDay.objects.count()) == (None, None, 1)


RANGE_SUFFIXES = ("_after", "_before", "__gte", "__gt", "__lte", "__lt")


@pytest.mark.django_db
def test_every_range_filter_says_which_field_and_whether_the_bound_is_included(schema):
    """The schema listed ``effective_before``, ``period_before``, ``created_at__lt``, ``day__lte`` ... with no
    description: a client could not tell which field they compare, nor that ``effective_before`` leaves the date out
    while ``period_before`` (event settlements) keeps it (QA guard)."""
    missing = []
    for path, item in schema["paths"].items():
        for parameter in (item.get("get") or {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["name"].endswith(RANGE_SUFFIXES) \
                    and not (parameter.get("description") or "").strip():
                missing.append((path, parameter["name"]))
    assert missing == []

    def described(path, name):
        return next(p["description"] for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name)

    assert described("/api/v1/enrollments/", "effective_before") == \
        "Effective date (program's local date) before this date; the date itself not included."
    assert described("/api/v1/event-settlements/", "period_before") == \
        "Event day (program's local date) on or before this date (included)."
    assert described("/api/v1/customer-settlements/", "period_after") == \
        "Periods whose last day is on or after this date (period_end, exclusive, later than it)."
    assert described("/api/v1/events/", "program") == "Program code."


@pytest.mark.django_db
def test_list_fields_stored_as_json_are_described_with_their_items(schema):
    """An event's target lists and a qualification question's choices and qualifying answers were stored as JSON
    and described as "any value" ({}): a client could not tell an event answers lists of territory codes and
    device types, nor what to send as a question's choices (QA guard)."""
    components = schema["components"]["schemas"]
    event = components["Event"]["properties"]
    for name in ("target_territories", "target_substations", "target_feeders"):
        assert event[name]["type"] == "array" and event[name]["items"]["type"] == "string", name
    assert event["target_device_types"]["items"] == {"$ref": "#/components/schemas/DeviceTypeEnum"}
    for component in ("QuestionInputRequest", "QuestionCreateRequest", "Question"):
        props = components[component]["properties"]
        assert props["choices"]["type"] == "array" and props["choices"]["items"]["type"] == "string", component
        kinds = props["qualifying_answers"]["oneOf"]
        assert kinds[0]["type"] == "array" and {"string", "boolean", "number"} == {
            k["type"] for k in kinds[0]["items"]["oneOf"]}, component
        assert kinds[1]["type"] == "object" and set(kinds[1]["properties"]) == {"min", "max"}, component
