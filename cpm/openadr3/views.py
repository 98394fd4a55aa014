"""The VTN's HTTP API (OpenADR 3.0.1 under ``/openadr3``, OpenADR 3.1.0 under ``/openadr3/3.1``: the same views
with ``v31`` set, see ``v31``): thin adapters that authenticate the OAuth bearer token,
check the spec's scope for the method, parse the JSON, call a service or a selector and answer the spec's JSON.

Errors are the spec's problems (``application/problem+json``: type, title, status, detail): 400 bad input, 401 no
or bad token, 403 a scope or right missing, 404 unknown id (or another VEN's object), 409 a duplicate or a state
conflict.
"""

from __future__ import annotations

import math

from django.db import IntegrityError
from django.http import Http404
from django.urls import reverse
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from cpm.base.api import BoundedJSONParser, api_now
from cpm.base.errors import ConflictError, DomainError, DomainValidationError, NotFound
from cpm.base.numbers import ascii_digits
from devices.selectors import aggregator_of
from events import services as event_services
from programs import services as program_services

from . import documents as docs
from . import scopes as sc
from . import selectors as sel
from . import services, v31

READ_SCOPES = {sc.READ_ALL, sc.READ_TARGETS, sc.READ_VEN_OBJECTS}
MAX_LIMIT = 50
MAX_TARGETED_ROWS = 10_000  # rows a 3.1 ``targets`` query filters (then pages)
CLIENT_ID_KINDS = ("ven", "resource", "report", "subscription")
V31_DOCS = {"program": v31.program_doc, "event": v31.event_doc, "ven": v31.ven_doc, "resource": v31.resource_doc,
            "report": v31.report_doc, "subscription": v31.subscription_doc}
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 415: "Unsupported Media Type", 429: "Too Many Requests"}


class ProblemJSONRenderer(JSONRenderer):
    media_type = "application/problem+json"
    format = "problem"


def problem_response(status: int, detail: str, request=None, headers: dict | None = None) -> Response:
    body = docs.problem(status, TITLES.get(status, "Error"), detail, request.path if request is not None else "")
    response = Response(body, status=status, headers=headers, content_type="application/problem+json")
    return response


def problem_handler(exc, context):
    """Every error under ``/openadr3`` as the spec's problem."""
    request = context.get("request")
    if isinstance(exc, DomainValidationError):
        return problem_response(400, exc.message, request)
    if isinstance(exc, DomainError):
        return problem_response(exc.status_code, exc.message, request)
    if isinstance(exc, IntegrityError):
        return problem_response(409, "The change conflicts with existing data.", request)
    if isinstance(exc, Http404):
        return problem_response(404, str(exc) or "Not found.", request)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return problem_response(401, "Give a valid bearer token (OAuth 2 client credentials: POST /openadr3/auth/"
                                     "token).", request, headers={"WWW-Authenticate": 'Bearer realm="openadr3"'})
    if isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem_response(exc.status_code, detail, request)
    return None


class ClientCredentialsAuthentication(OAuth2Authentication):
    """django-oauth-toolkit's bearer authentication; a client-credentials token has no user of its own: the
    client acts as its application's user (an aggregator's API user, or a utility user)."""

    www_authenticate_realm = "openadr3"

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        if user is None and token.application_id:
            user = token.application.user
        if user is None or not user.is_active:
            return None
        return user, token


class ScopePermission(BasePermission):
    """An authenticated OpenADR client whose token holds the scope the method needs (``view.write_scope`` for
    writes, a read scope for reads) and, for writes, who is of the kind the view allows (``view.writers``)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None or not request.user or not request.user.is_authenticated:
            raise drf_exceptions.NotAuthenticated()
        kind = sc.client_kind(request.user)
        if kind is None:
            raise drf_exceptions.PermissionDenied("This client is neither business logic nor a VEN.")
        scopes = frozenset(token.scope.split())
        view.client = sel.Client(kind=kind, user=request.user, client_id=token.application.client_id
                                 if token.application_id else "", scopes=scopes,
                                 aggregator=aggregator_of(request.user) if kind == "ven" else None)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            if not scopes & view.read_scopes:
                raise drf_exceptions.PermissionDenied(f"Reading {view.object_name or 'this'} needs one of the scopes "
                                                      f"{', '.join(sorted(view.read_scopes))}.")
            return True
        if kind not in view.writers:
            raise drf_exceptions.PermissionDenied(f"A {'VEN' if kind == 'ven' else 'business logic'} client may "
                                                  f"not write {view.object_name}.")
        if view.write_scope not in scopes:
            raise drf_exceptions.PermissionDenied(f"The token lacks the scope {view.write_scope}.")
        return True


class OpenADRView(APIView):
    authentication_classes = [ClientCredentialsAuthentication]
    permission_classes = [ScopePermission]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes: list = []
    write_scope = ""
    # The spec's read scopes: programs and events are read with read_targets (a VEN) or read_all (business logic);
    # a VEN's own objects (VENs, resources, reports, subscriptions) with read_ven_objects or read_all.
    read_scopes = frozenset({sc.READ_ALL, sc.READ_VEN_OBJECTS})
    writers: tuple[str, ...] = ("bl",)
    object_name = ""
    kind = ""  # the object type this view answers (program, event, ven, resource, report, subscription)
    v31 = False  # True under /openadr3/3.1: OpenADR 3.1.0 representations
    client: sel.Client

    def get_exception_handler(self):
        return problem_handler

    def initial(self, request, *args, **kwargs):
        """Authenticate and check the scope (``ScopePermission``), then refuse a query parameter holding a NUL
        character (PostgreSQL cannot compare it: a 400 naming the parameter, as the rest of the API)."""
        super().initial(request, *args, **kwargs)
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise DomainValidationError({key.replace("\x00", "\\x00"): [NUL_MESSAGE]})

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"

    # -- helpers
    def body(self, request) -> dict:
        """The JSON object of the request; under ``/3.1`` turned into the 3.0.1 fields the services read."""
        data = request.data
        if not isinstance(data, dict):
            raise DomainValidationError({"body": ["Give a JSON object."]})
        _refuse_unstorable(data, "")
        if not self.v31:
            return data
        if self.kind == "program":
            return v31.program_request(data)
        if self.kind == "event":
            return v31.event_request(data)
        if self.kind in ("ven", "resource", "subscription"):
            return v31.targeted_request(data, keep_targets=self.client.kind == "bl" or self.kind == "subscription")
        return data

    def out(self, data, status: int = 200) -> Response:
        """The answer: the 3.0.1 document(s) as they are, or under ``/3.1`` their 3.1 representation (filtered by
        the ``targets`` query and paged when one was given)."""
        if not self.v31:
            return Response(data, status=status)
        many = isinstance(data, list)
        items = data if many else [data]
        convert = V31_DOCS[self.kind]
        if self.kind in CLIENT_ID_KINDS:
            ids = {**sel.client_ids(self.kind, [d["id"] for d in items]), **getattr(self, "known_client_ids", {})}
            items = [convert(d, client_id=ids.get(d["id"], "")) for d in items]
        else:
            items = [convert(d) for d in items]
        if many and getattr(self, "wanted_targets", None):
            skip, limit = self.page
            items = [d for d in items if v31.has_targets(d, self.wanted_targets)][skip:skip + limit]
        return Response(items if many else items[0], status=status)

    def paging(self, request) -> tuple[int, int]:
        """The ``skip`` / ``limit`` query (limit at most 50). A 3.1 ``targets`` query filters the documents after
        selection: the selector is then asked for every row and ``out`` pages the filtered list."""
        skip, limit = self._paging(request)
        self.wanted_targets = v31.parse_targets({"targets": request.query_params.getlist("targets")}) \
            if self.v31 else []
        self.page = (skip, limit)
        return (0, MAX_TARGETED_ROWS) if self.wanted_targets else (skip, limit)

    def _paging(self, request) -> tuple[int, int]:
        values = {}
        for name, default, low, high in (("skip", 0, 0, 10**9), ("limit", MAX_LIMIT, 0, MAX_LIMIT)):
            raw = request.query_params.get(name)
            if raw is None:
                values[name] = default
                continue
            if not ascii_digits(raw) or not low <= int(raw) <= high:
                raise DomainValidationError({name: [f"{name} is an integer from {low} to {high}."]})
            values[name] = int(raw)
        return values["skip"], values["limit"]

    @property
    def version(self) -> str:
        return "3.1.0" if self.v31 else "3.0.1"

    def before_delete(self, obj) -> None:
        """Under ``/3.1``: note the object's ``clientID`` while it still exists (a DELETE answers the object)."""
        if self.v31 and self.kind in CLIENT_ID_KINDS:
            self.known_client_ids = sel.client_ids(self.kind, [str(obj.pk)])

    def targets(self, request) -> sel.TargetFilter | None:
        if self.v31:
            return None  # 3.1's ``targets`` query: see ``paging`` and ``out``
        target_type = request.query_params.get("targetType")
        values = request.query_params.getlist("targetValues")
        if target_type is None and not values:
            return None
        if not target_type or not values:
            raise DomainValidationError({"targetType": ["Give targetType and targetValues together."]})
        return sel.TargetFilter(type=target_type, values=tuple(values))

    def now(self):
        return api_now()


def _refuse_unstorable(value, where: str) -> None:
    """What no JSON column stores: a number too large for a float (``1e400``, read as infinity), or a NUL character
    (``\\x00``, which PostgreSQL's text and jsonb refuse) in a text or a key: a 400 naming its place
    (``resources[0].intervals[0].payloads[0].values[0]``). Walked without recursion (a body may nest thousands
    deep)."""
    stack = [(value, where)]
    while stack:
        item, place = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise DomainValidationError({place or "body": ["A number beyond what a double-precision float holds."]})
        if isinstance(item, str) and "\x00" in item:
            raise DomainValidationError({place or "body": [NUL_MESSAGE]})
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{place}.{key}" if place else str(key)
                if "\x00" in str(key):
                    raise DomainValidationError({name.replace("\x00", "\\x00"): [NUL_MESSAGE]})
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{place}[{index}]") for index, child in reversed(list(enumerate(item))))


NUL_MESSAGE = "A NUL character (\\x00) is not allowed."


def _found(obj, what: str, obj_id: str):
    if obj is None:
        raise NotFound(f"{what} {obj_id} not found.")
    return obj


# ---------------------------------------------------------------------------------------------------------- programs
class ProgramsView(OpenADRView):
    kind = "program"
    read_scopes = frozenset({sc.READ_ALL, sc.READ_TARGETS})
    use_cases = {"post": "program.create"}
    write_scope, object_name = sc.WRITE_PROGRAMS, "programs"

    def get(self, request):
        skip, limit = self.paging(request)
        return self.out(sel.programs_list(client=self.client, targets=self.targets(request), skip=skip, limit=limit))

    def post(self, request):
        try:
            program = program_services.program_create(
                data=services.program_fields(self.body(request), creating=True), now=self.now(), actor=request.user)
        except DomainValidationError as exc:
            raise services.program_errors(exc) from exc
        return self.out(docs.program_doc(program), status=201)


class ProgramView(OpenADRView):
    kind = "program"
    read_scopes = frozenset({sc.READ_ALL, sc.READ_TARGETS})
    use_cases = {"put": "program.update", "delete": "program.delete"}
    write_scope, object_name = sc.WRITE_PROGRAMS, "programs"

    def _get(self, program_id):
        return _found(sel.program_get(client=self.client, program_id=program_id), "Program", program_id)

    def get(self, request, program_id):
        return self.out(docs.program_doc(self._get(program_id)))

    def put(self, request, program_id):
        program = self._get(program_id)
        fields = services.program_fields(self.body(request), creating=False)
        try:
            program = program_services.program_update(program=program, data=fields, now=self.now(),
                                                      actor=request.user)
        except DomainValidationError as exc:
            raise services.program_errors(exc) from exc
        return self.out(docs.program_doc(program))

    def delete(self, request, program_id):
        program = self._get(program_id)
        doc = docs.program_doc(program)
        try:
            program_services.program_delete(program=program, now=self.now(), actor=request.user)
        except DomainValidationError as exc:
            raise ConflictError(exc.message) from exc
        return self.out(doc)


# ------------------------------------------------------------------------------------------------------------ events
class EventsView(OpenADRView):
    kind = "event"
    read_scopes = frozenset({sc.READ_ALL, sc.READ_TARGETS})
    use_cases = {"post": "openadr3.event.create"}
    write_scope, object_name = sc.WRITE_EVENTS, "events"

    def get(self, request):
        skip, limit = self.paging(request)
        return self.out(sel.events_list(client=self.client, program_id=request.query_params.get("programID"),
                                        targets=self.targets(request), skip=skip, limit=limit))

    def post(self, request):
        data = self.body(request)
        program_id = data.get("programID")
        program = sel.program_get(client=self.client, program_id=str(program_id)) if program_id is not None else None
        if program is None:
            raise DomainValidationError({"programID": [f"No program {program_id}."]})
        event = services.oadr_event_create(program=program, data=data, now=self.now(), actor=request.user)
        oadr = sel.event_get(client=self.client, event_id=str(event.pk))
        return self.out(sel.event_docs([oadr])[0], status=201)


class EventView(OpenADRView):
    kind = "event"
    read_scopes = frozenset({sc.READ_ALL, sc.READ_TARGETS})
    use_cases = {"put": "event.update", "delete": "event.cancel"}
    write_scope, object_name = sc.WRITE_EVENTS, "events"

    def _get(self, event_id):
        return _found(sel.event_get(client=self.client, event_id=event_id), "Event", event_id)

    def get(self, request, event_id):
        return self.out(sel.event_docs([self._get(event_id)])[0])

    def put(self, request, event_id):
        oadr = self._get(event_id)
        data = self.body(request)
        if data.get("programID") is not None and str(data["programID"]) != str(oadr.program_id):
            raise DomainValidationError({"programID": ["An event stays in its program."]})
        changes = services.event_changes(data)
        services.check_moved_start(event=oadr.event, start=changes["start"], now=self.now())
        event_services.event_update(event=oadr.event, changes=changes, now=self.now(), actor=request.user,
                                    reason="changed through OpenADR 3")
        return self.out(sel.event_docs([self._get(event_id)])[0])

    def delete(self, request, event_id):
        oadr = self._get(event_id)
        doc = sel.event_docs([oadr])[0]
        event_services.event_cancel(event=oadr.event, reason="cancelled through OpenADR 3 (DELETE)", now=self.now(),
                                    actor=request.user)
        return self.out(doc)


# -------------------------------------------------------------------------------------------------------------- vens
class VensView(OpenADRView):
    kind = "ven"
    use_cases = {"post": "openadr3.ven.create"}
    write_scope, object_name, writers = sc.WRITE_VENS, "vens", ("bl", "ven")

    def get(self, request):
        skip, limit = self.paging(request)
        return self.out(sel.vens_list(client=self.client, ven_name=request.query_params.get("venName"),
                                      targets=self.targets(request), skip=skip, limit=limit))

    def post(self, request):
        client_id = self.client.client_id
        if self.v31 and self.client.kind == "bl":
            # 3.1: business logic names the VEN's own OAuth client (BL_VEN_REQUEST.clientID).
            client_id = request.data.get("clientID") if isinstance(request.data, dict) else None
            if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128:
                raise DomainValidationError({"clientID": ["Give the VEN's client ID (1 to 128 characters)."]})
        ven = services.ven_create(data=self.body(request), client_id=client_id, now=self.now(),
                                  actor=request.user)
        return self.out(docs.ven_doc(ven), status=201)


class VenView(OpenADRView):
    kind = "ven"
    use_cases = {"put": "openadr3.ven.update", "delete": "openadr3.ven.delete"}
    write_scope, object_name, writers = sc.WRITE_VENS, "vens", ("bl", "ven")

    def _get(self, ven_id):
        return _found(sel.ven_get(client=self.client, ven_id=ven_id), "VEN", ven_id)

    def get(self, request, ven_id):
        return self.out(docs.ven_doc(self._get(ven_id)))

    def put(self, request, ven_id):
        ven = self._get(ven_id)
        data = self.body(request)
        if self.v31 and self.client.kind == "ven":
            data["targets"] = ven.targets  # 3.1: only business logic assigns a VEN's targets
        ven = services.ven_update(ven=ven, data=data, now=self.now(), actor=request.user)
        return self.out(docs.ven_doc(ven))

    def delete(self, request, ven_id):
        ven = self._get(ven_id)
        self.before_delete(ven)
        return self.out(services.ven_delete(ven=ven, now=self.now(), actor=request.user))


class ResourcesView(OpenADRView):
    kind = "resource"
    use_cases = {"post": "openadr3.resource.create"}
    write_scope, object_name, writers = sc.WRITE_VENS, "resources", ("bl", "ven")

    def _ven(self, ven_id):
        return _found(sel.ven_get(client=self.client, ven_id=ven_id), "VEN", ven_id)

    def get(self, request, ven_id):
        skip, limit = self.paging(request)
        return self.out(sel.resources_list(ven=self._ven(ven_id), resource_name=request.query_params.get(
            "resourceName"), targets=self.targets(request), skip=skip, limit=limit))

    def post(self, request, ven_id):
        resource = services.resource_create(ven=self._ven(ven_id), data=self.body(request), now=self.now(),
                                            actor=request.user)
        return self.out(docs.resource_doc(resource), status=201)


class ResourceView(ResourcesView):
    use_cases = {"post": "openadr3.resource.create", "put": "openadr3.resource.update",
                 "delete": "openadr3.resource.delete"}

    def _get(self, ven_id, resource_id):
        ven = self._ven(ven_id)
        return _found(sel.resource_get(ven=ven, resource_id=resource_id), "Resource", resource_id)

    def get(self, request, ven_id, resource_id):
        return self.out(docs.resource_doc(self._get(ven_id, resource_id)))

    def put(self, request, ven_id, resource_id):
        resource = services.resource_update(resource=self._get(ven_id, resource_id), data=self.body(request),
                                            now=self.now(), actor=request.user)
        return self.out(docs.resource_doc(resource))

    def delete(self, request, ven_id, resource_id):
        return self.out(services.resource_delete(resource=self._get(ven_id, resource_id), now=self.now(),
                                                 actor=request.user))

    def post(self, request, *args, **kwargs):
        raise drf_exceptions.MethodNotAllowed("POST")


class Resources31View(ResourcesView):
    """OpenADR 3.1's ``/resources``: every resource the client may see, ``venID`` a filter (and, for business
    logic, the body's field naming the VEN of a new resource; a VEN client adds to its own VEN)."""

    v31 = True

    def get(self, request):
        skip, limit = self.paging(request)
        q = request.query_params
        return self.out(sel.resources_of(client=self.client, ven_id=q.get("venID"), resource_name=q.get(
            "resourceName"), skip=skip, limit=limit))

    def post(self, request):
        data = self.body(request)
        if self.client.kind == "ven":
            ven = sel.vens_qs(self.client).first()
            if ven is None:
                raise DomainValidationError({"venID": ["Register the VEN first (POST /vens)."]})
        else:
            ven_id = data.get("venID")
            ven = sel.ven_get(client=self.client, ven_id=ven_id) if isinstance(ven_id, str) else None
            if ven is None:
                raise DomainValidationError({"venID": [f"No VEN {ven_id}."]})
        resource = services.resource_create(ven=ven, data=data, now=self.now(), actor=request.user)
        return self.out(docs.resource_doc(resource), status=201)


class Resource31View(ResourcesView):
    """OpenADR 3.1's ``/resources/{resourceID}`` (a resource stays with its VEN: a different ``venID`` is a 400)."""

    v31 = True
    use_cases = {"post": "openadr3.resource.create", "put": "openadr3.resource.update",
                 "delete": "openadr3.resource.delete"}

    def _get(self, resource_id):
        return _found(sel.resource_of(client=self.client, resource_id=resource_id), "Resource", resource_id)

    def get(self, request, resource_id):
        return self.out(docs.resource_doc(self._get(resource_id)))

    def put(self, request, resource_id):
        resource = self._get(resource_id)
        data = self.body(request)
        if data.get("venID") is not None and str(data["venID"]) != str(resource.ven_id):
            raise DomainValidationError({"venID": ["A resource stays with its VEN."]})
        if self.client.kind == "ven":
            data["targets"] = resource.targets  # 3.1: only business logic assigns a resource's targets
        resource = services.resource_update(resource=resource, data=data, now=self.now(), actor=request.user)
        return self.out(docs.resource_doc(resource))

    def delete(self, request, resource_id):
        resource = self._get(resource_id)
        self.before_delete(resource)
        return self.out(services.resource_delete(resource=resource, now=self.now(), actor=request.user))

    def post(self, request, *args, **kwargs):
        raise drf_exceptions.MethodNotAllowed("POST")


# ----------------------------------------------------------------------------------------------------------- reports
class ReportsView(OpenADRView):
    kind = "report"
    use_cases = {"post": "openadr3.report.create"}
    write_scope, object_name, writers = sc.WRITE_REPORTS, "reports", ("ven",)

    def get(self, request):
        skip, limit = self.paging(request)
        q = request.query_params
        return self.out(sel.reports_list(client=self.client, program_id=q.get("programID"), event_id=q.get("eventID"),
                                         client_name=q.get("clientName"), skip=skip, limit=limit))

    def post(self, request):
        report = services.report_create(data=self.body(request), client_id=self.client.client_id, now=self.now(),
                                        actor=request.user)
        return self.out(docs.report_doc(report), status=201)


class ReportView(OpenADRView):
    kind = "report"
    use_cases = {"put": "openadr3.report.update", "delete": "openadr3.report.delete"}
    write_scope, object_name, writers = sc.WRITE_REPORTS, "reports", ("ven",)

    def _get(self, report_id):
        return _found(sel.report_get(client=self.client, report_id=report_id), "Report", report_id)

    def get(self, request, report_id):
        return self.out(docs.report_doc(self._get(report_id)))

    def put(self, request, report_id):
        report = services.report_update(report=self._get(report_id), data=self.body(request), now=self.now(),
                                        actor=request.user)
        return self.out(docs.report_doc(report))

    def delete(self, request, report_id):
        report = self._get(report_id)
        self.before_delete(report)
        return self.out(services.report_delete(report=report, now=self.now(), actor=request.user))


# ----------------------------------------------------------------------------------------------------- subscriptions
class SubscriptionsView(OpenADRView):
    kind = "subscription"
    use_cases = {"post": "openadr3.subscription.create"}
    write_scope, object_name, writers = sc.WRITE_SUBSCRIPTIONS, "subscriptions", ("bl", "ven")

    def get(self, request):
        skip, limit = self.paging(request)
        q = request.query_params
        return self.out(sel.subscriptions_list(
            client=self.client, program_id=q.get("programID"), client_name=q.get("clientName"),
            objects=[o for value in q.getlist("objects") for o in value.split(",") if o],
            targets=self.targets(request), skip=skip, limit=limit))

    def post(self, request):
        sub = services.subscription_create(data=self.body(request), client_id=self.client.client_id, now=self.now(),
                                           actor=request.user, version=self.version)
        return self.out(docs.subscription_doc(sub), status=201)


class SubscriptionView(OpenADRView):
    kind = "subscription"
    use_cases = {"put": "openadr3.subscription.update", "delete": "openadr3.subscription.delete"}
    write_scope, object_name, writers = sc.WRITE_SUBSCRIPTIONS, "subscriptions", ("bl", "ven")

    def _get(self, subscription_id):
        return _found(sel.subscription_get(client=self.client, subscription_id=subscription_id), "Subscription",
                      subscription_id)

    def get(self, request, subscription_id):
        return self.out(docs.subscription_doc(self._get(subscription_id)))

    def put(self, request, subscription_id):
        sub = services.subscription_update(subscription=self._get(subscription_id), data=self.body(request),
                                           now=self.now(), actor=request.user, version=self.version)
        return self.out(docs.subscription_doc(sub))

    def delete(self, request, subscription_id):
        sub = self._get(subscription_id)
        self.before_delete(sub)
        return self.out(services.subscription_delete(subscription=sub, now=self.now(), actor=request.user))


# --------------------------------------------------------------------------------------------- notifiers and auth
class NotifiersView(OpenADRView):
    """The notifiers this VTN offers (OpenADR 3.1): webhooks only (no MQTT)."""

    read_scopes = READ_SCOPES

    def get(self, request):
        # 3.1's notifiersResponse: MQTT is an optional object (not nullable), so it is left out there.
        return Response({"WEBHOOK": True} if self.v31 else {"WEBHOOK": True, "MQTT": None})


class AuthServerView(APIView):
    """OpenADR 3.1 discovery of the token endpoint (no authentication)."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    token_url_name = "openadr3:token"

    def get(self, request):
        return Response({"tokenURL": request.build_absolute_uri(reverse(self.token_url_name))})


def not_found(request, *args, **kwargs):
    """An unknown path under /openadr3: the spec's 404 problem."""
    from django.http import JsonResponse

    return JsonResponse(docs.problem(404, "Not Found", f"No OpenADR 3 resource at {request.path}.", request.path),
                        status=404, content_type="application/problem+json")

