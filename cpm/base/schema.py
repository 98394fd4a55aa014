"""OpenAPI: the one error contract (``cpm.base.api.ERROR_CONTRACT``) declared on every operation.

A drf-spectacular post-processing hook adds the ``Error`` component and, on each operation, the error responses it
can give: 401 and 403 everywhere, 404 where the path names an object, 400 and 409 on writes, 429 on throttled
writes. Responses an operation already declares are kept.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "One shape for every error: a machine code, a sentence, and the failing fields' messages "
                   "under their paths (a field named `code` is reported as `code_field`).",
    "properties": {
        "code": {"type": "string", "description": "Machine-readable code, e.g. invalid, conflict, "
                                                   "transition_not_allowed, not_found, not_authenticated, "
                                                   "permission_denied, capability_required, throttled."},
        "detail": {"type": "string", "description": "What went wrong, in a sentence."},
    },
    "required": ["code", "detail"],
    "additionalProperties": {"description": "Messages of one field (by path), or context such as the "
                                            "conflicting object's id.",
                             "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"},
                                       {"type": "integer"}, {"type": "object"}, {"type": "array"}]},
}

_DESCRIPTIONS = {
    "400": "Invalid input: the fields and their messages.",
    "401": "No or bad credentials (`WWW-Authenticate: Token`).",
    "403": "Signed in, but this user's role lacks the capability.",
    "404": "No such object (or not one this client may see).",
    "409": "Conflicts with the object's status or with existing data.",
    "429": "Too many writes: retry later.",
}


TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$"


def _local_times(node) -> None:
    """Wall-clock times of day (a program's event window, ``14:00:00``) are local times without an offset: OpenAPI's
    ``format: time`` is RFC 3339's ``full-time``, which requires one; describe them by a pattern instead."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "time":
            node.pop("format")
            node["pattern"] = TIME_PATTERN
            node.setdefault("description", "Local wall-clock time of day, HH:MM[:SS], in the program's zone.")
        for value in node.values():
            _local_times(value)
    elif isinstance(node, list):
        for value in node:
            _local_times(value)


#: Operations grouped by domain (the first path segment after /api/v1/ -> the tag), in the field's words.
DOMAIN_TAGS: dict[str, tuple[str, ...]] = {
    "Programs": ("programs", "seasons", "participation-rules", "incentive-rules", "qualification-questions",
                 "mutual-exclusions", "price-sets"),
    "Premises, service points and devices": ("premises", "service-points", "devices", "aggregators"),
    "Customers and enrollments": ("customers", "accounts", "service-agreements", "enrollments", "subscriptions"),
    "Events": ("events", "reservations", "participations", "unavailabilities"),
    "Aggregator integration": ("aggregator",),
    "Meter data": ("meter-data-loads", "interval-days", "abnormal-days"),
    "Settlement and bill credits": ("event-settlements", "customer-settlements", "settlement-batches",
                                    "bill-credit-exports"),
}
TAG_DESCRIPTIONS = {
    "Programs": "What is offered: programs, their seasons, participation rules, incentive rules, qualification "
                "questions, mutual exclusions and interval price sets. Status changes are actions.",
    "Premises, service points and devices": "Where and what the devices are: CIS premises and service points, "
                                            "controllable devices and the aggregators that operate them.",
    "Customers and enrollments": "Who takes part: customers, accounts, service agreements, enrollments (with "
                                 "eligibility reasons) and program subscriptions.",
    "Events": "When programs are called: events and their revisions, the reservation ledger, participations, "
              "opt-outs and unavailability.",
    "Aggregator integration": "For an aggregator's or OEM cloud's API client: its upcoming events and outcome "
                              "reports.",
    "Meter data": "Interval meter data: load jobs (CSV, Green Button, bulk readings), stored interval days, and "
                  "abnormal days (outages, abnormal operation) left out of baselines.",
    "Settlement and bill credits": "What was earned: event and customer settlements, their batches, and "
                                   "bill-credit exports for the billing system.",
}
_TAG_OF = {segment: tag for tag, segments in DOMAIN_TAGS.items() for segment in segments}


def _singular(resource: str) -> str:
    words = resource.replace("-", " ")
    for plural, single in (("ies", "y"), ("ches", "ch"), ("sses", "ss"), ("s", "")):
        if words.endswith(plural):
            return words[: -len(plural)] + single
    return words


def _summary(path: str, method: str) -> str:
    """A short summary from the route: ``List events``, ``Create an event``, ``Cancel an event``, ..."""
    parts = [p for p in path.split("/") if p][2:]  # after api/v1
    if not parts:
        return ""
    resource = parts[0].replace("-", " ")
    one = _singular(parts[0])
    article = "an" if one[:1] in "aeiou" else "a"
    detail = len(parts) > 1 and parts[1].startswith("{")
    action = parts[2 if detail else 1].replace("-", " ").replace("_", " ") if len(parts) > (2 if detail else 1) else ""
    if action:
        target = f"{article} {one}" if detail else resource
        return f"{action.capitalize()} ({target})" if method == "get" else f"{action.capitalize()}: {target}"
    if detail:
        return {"get": f"Get {article} {one}", "put": f"Replace {article} {one}", "patch": f"Update {article} {one}",
                "delete": f"Delete {article} {one}"}.get(method, "")
    return {"get": f"List {resource}", "post": f"Create {article} {one}"}.get(method, "")


def _tag_operations(result) -> None:
    for path, item in result.get("paths", {}).items():
        parts = path.split("/")
        tag = _TAG_OF.get(parts[3]) if len(parts) > 3 and path.startswith("/api/v1/") else None
        for method, operation in item.items():
            if tag and isinstance(operation, dict) and method in {"get", "post", "put", "patch", "delete"}:
                operation["tags"] = [tag]
                operation.setdefault("summary", _summary(path, method))
    result["tags"] = [{"name": tag, "description": TAG_DESCRIPTIONS[tag]} for tag in DOMAIN_TAGS]


def add_error_responses(result, generator, request, public):
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: declare the error contract on every operation (and describe
    local times of day as what they are)."""
    _local_times(result.get("components", {}))
    _tag_operations(result)
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in result.get("paths", {}).items():
        names_object = "{" in path
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = ["401", "403"]
            if names_object:
                codes.append("404")
            if method != "get":
                codes += ["400", "409", "429"]
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, {"description": _DESCRIPTIONS[code],
                                            "content": {"application/json": {"schema": ref}}})
    return result


def exclude_openadr3(endpoints):
    """drf-spectacular preprocessing hook: the OpenADR 3 VTN (``/openadr3/``) is described by the spec's own OpenAPI
    definition and answers the spec's problems, not this API's error contract: it is left out of this schema."""
    return [e for e in endpoints if not e[0].startswith("/openadr3/")]
