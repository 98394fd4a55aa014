"""OpenADR 3.1.0 representations (under ``/openadr3/3.1``) of the same objects the 3.0.1 API serves: one model of
truth, two wire shapes. The views build the 3.0.1 document (``documents``) and turn it into 3.1 here; a 3.1 request
body is turned into the 3.0.1 fields the services read. No queries here.

What differs in 3.1 (OpenADR 3.1 openapi ``components/schemas``) and how cpm maps it:

- ``targets`` are plain strings (3.0.1: ``[{type, values}]``). A 3.0.1 target list is shown as the strings of its
  values (an event's targets: its VEN names then its resource names). A 3.1 event's target strings name VENs or
  resources (a device is targeted when its VEN's name or its resource name is among them); a VEN's, resource's or
  subscription's target strings are kept as one valuesMap ``{"type": "TARGET", "values": [...]}``. The ``targets``
  query (repeated) keeps the objects carrying every given target (the spec's AND).
- program: ``programLongName``, ``programType``, ``bindingEvents`` etc. moved into ``attributes`` (valuesMaps
  ``PROGRAM_LONG_NAME``, ``PROGRAM_TYPE``, ``BINDING_EVENTS``).
- event: no ``modificationNumber``; report descriptors carry ``reportIntervals``.
- report: ``clientID`` (the reporting VEN's OAuth client), no ``programID``.
- subscription: ``clientID``; operations may be given as the 3.1.1 names READ/CREATE/UPDATE/DELETE (kept as
  GET/POST/PUT/DELETE, the names ``openadr3-client``'s 3.1 models use).
- VEN: ``clientID``, ``objectType`` in requests (``BL_VEN_REQUEST`` / ``VEN_VEN_REQUEST``), no embedded resources;
  targets given by a VEN client are ignored (the spec: only business logic assigns them).
- resource: served at ``/resources`` (``venID`` in the body and as a query filter) with ``clientID``.
"""

from __future__ import annotations

from cpm.base.errors import DomainValidationError

TARGET = "TARGET"
OPERATION_NAMES = {"READ": "GET", "CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"}


def target_strings(value_maps: list[dict] | None) -> list[str] | None:
    """``[{"type": "VEN_NAME", "values": ["a"]}, ...]`` -> ``["a", ...]`` (each value once, in order); None when
    there is none. Linear in the values (a dict keeps the first of each in order): an event's targets carry every
    reserved device's resource name."""
    out = dict.fromkeys(str(v) for vm in value_maps or [] for v in vm.get("values") or [])
    return list(out) or None


def parse_targets(data: dict, key: str = "targets") -> list[str]:
    """A 3.1 ``targets`` array of strings (1 to 128 characters each); ``DomainValidationError`` naming the field."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and 1 <= len(v) <= 128 for v in value):
        raise DomainValidationError({key: ["Give a list of target strings (1 to 128 characters each)."]})
    return value


def _attributes(data: dict) -> dict[str, list]:
    value = data.get("attributes")
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(a, dict) and isinstance(a.get("type"), str)
                                              and isinstance(a.get("values"), list) for a in value):
        raise DomainValidationError({"attributes": ["Give a list of {type, values} objects."]})
    return {a["type"]: a["values"] for a in value}


# -------------------------------------------------------------------------------------------------- requests
def program_request(data: dict) -> dict:
    """A 3.1 program request -> the 3.0.1 fields ``services.program_fields`` reads (long name and cpm program type
    from the ``PROGRAM_LONG_NAME`` / ``PROGRAM_TYPE`` attributes)."""
    attrs = _attributes(data)
    out = {"programName": data.get("programName")}
    for attr, key in (("PROGRAM_LONG_NAME", "programLongName"), ("PROGRAM_TYPE", "programType")):
        if attrs.get(attr):
            out[key] = attrs[attr][0]
    return out


def event_request(data: dict) -> dict:
    """A 3.1 event request -> 3.0.1 shape: the target strings as both VEN names and resource names."""
    out = dict(data)
    strings = parse_targets(data)
    out["targets"] = ([{"type": "VEN_NAME", "values": strings}, {"type": "RESOURCE_NAME", "values": strings}]
                      if strings else None)
    return out


def targeted_request(data: dict, *, keep_targets: bool = True) -> dict:
    """A 3.1 VEN / resource / subscription request -> 3.0.1 shape (targets kept as one ``TARGET`` valuesMap;
    dropped when ``keep_targets`` is False, i.e. given by a VEN client); subscription operations by their
    3.0.1 names."""
    out = {k: v for k, v in data.items() if k not in ("objectType", "clientID")}
    strings = parse_targets(data) if keep_targets else []
    out["targets"] = [{"type": TARGET, "values": strings}] if strings else None
    ops = data.get("objectOperations")
    if isinstance(ops, list):
        out["objectOperations"] = [
            {**op, "operations": [OPERATION_NAMES.get(o, o) if isinstance(o, str) else o
                                           for o in op["operations"]]}
            if isinstance(op, dict) and isinstance(op.get("operations"), list) else op for op in ops]
    return out


# ------------------------------------------------------------------------------------------------- documents
def _common(doc: dict) -> dict:
    out = dict(doc)
    if "targets" in out:
        out["targets"] = target_strings(out["targets"])
    return out


def program_doc(doc: dict) -> dict:
    attributes = [{"type": "PROGRAM_LONG_NAME", "values": [doc["programLongName"]]},
                  {"type": "PROGRAM_TYPE", "values": [doc["programType"]]},
                  {"type": "BINDING_EVENTS", "values": [bool(doc.get("bindingEvents"))]}]
    keep = ("id", "createdDateTime", "modificationDateTime", "objectType", "programName", "intervalPeriod",
            "programDescriptions", "payloadDescriptors", "targets")
    return {**_common({k: doc.get(k) for k in keep if k in doc}), "attributes": attributes}


def event_doc(doc: dict) -> dict:
    out = _common(doc)
    out.pop("modificationNumber", None)
    out["reportDescriptors"] = [
        {**{k: v for k, v in rd.items() if k != "targets"}, "targets": target_strings(rd.get("targets")),
         "reportIntervals": rd.get("reportIntervals", "INTERVALS")} for rd in out.get("reportDescriptors") or []]
    return out


def report_doc(doc: dict, *, client_id: str) -> dict:
    out = {k: v for k, v in doc.items() if k != "programID"}
    out["clientID"] = client_id
    return out


def subscription_doc(doc: dict, *, client_id: str) -> dict:
    return {**_common(doc), "clientID": client_id}


def ven_doc(doc: dict, *, client_id: str) -> dict:
    out = _common({k: v for k, v in doc.items() if k != "resources"})
    out["clientID"] = client_id
    return out


def resource_doc(doc: dict, *, client_id: str) -> dict:
    return {**_common(doc), "clientID": client_id}


def has_targets(doc: dict, wanted: list[str]) -> bool:
    """The spec's target filter: the object carries every wanted target."""
    return set(wanted) <= set(doc.get("targets") or [])



def object_doc(object_type: str, doc: dict, *, client_id: str) -> dict:
    """The 3.1 form of a 3.0.1 document of ``object_type`` (PROGRAM, EVENT, VEN, RESOURCE, REPORT, SUBSCRIPTION);
    ``client_id`` for the four that carry one."""
    if object_type == "PROGRAM":
        return program_doc(doc)
    if object_type == "EVENT":
        return event_doc(doc)
    convert = {"VEN": ven_doc, "RESOURCE": resource_doc, "REPORT": report_doc, "SUBSCRIPTION": subscription_doc}
    return convert[object_type](doc, client_id=client_id)
