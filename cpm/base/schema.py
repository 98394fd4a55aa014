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


def add_error_responses(result, generator, request, public):
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: declare the error contract on every operation (and describe
    local times of day as what they are)."""
    _local_times(result.get("components", {}))
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
