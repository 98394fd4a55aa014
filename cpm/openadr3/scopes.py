"""Which OAuth scopes a client may hold (django-oauth-toolkit's scopes backend, ``OAUTH2_PROVIDER``).

A client whose application belongs to an aggregator's API user is a VEN client: ``VEN_SCOPES``. A client whose
application belongs to a user who may manage events or programs is business logic (the utility): ``BL_SCOPES``.
Anybody else gets no scope, so its token opens nothing under ``/openadr3``. A token request asking for a scope
outside these is refused by the token endpoint (``invalid_scope``).

OpenADR 3.0.1 has a single read scope, ``read_all`` ("VENs and BL can read all resources", 3.0.1 openapi
``securitySchemes``; every 3.0.1 GET asks for it), so a VEN may also ask the 3.0.1 token endpoint
(``/openadr3/auth/token``) for ``read_all``; what it sees is still decided by who it is (``selectors``), never by
the scope. OpenADR 3.1 gives ``read_all`` to business logic only: its token endpoint (``/openadr3/3.1/auth/token``)
refuses it to a VEN. A VEN asking for no scope gets ``VEN_SCOPES`` from either.
"""

from __future__ import annotations

from django.conf import settings

from cpm.base.capabilities import Cap, actor_can

READ_ALL, READ_TARGETS, READ_VEN_OBJECTS = "read_all", "read_targets", "read_ven_objects"
WRITE_PROGRAMS, WRITE_EVENTS, WRITE_REPORTS = "write_programs", "write_events", "write_reports"
WRITE_SUBSCRIPTIONS, WRITE_VENS = "write_subscriptions", "write_vens"

BL_SCOPES = [READ_ALL, WRITE_PROGRAMS, WRITE_EVENTS, WRITE_SUBSCRIPTIONS, WRITE_VENS]
VEN_SCOPES = [READ_TARGETS, READ_VEN_OBJECTS, WRITE_REPORTS, WRITE_SUBSCRIPTIONS, WRITE_VENS]


def client_kind(user) -> str | None:
    """``"ven"`` for an aggregator's API user, ``"bl"`` for a user who may manage events or programs, else None."""
    if user is None or not getattr(user, "is_active", False):
        return None
    from devices.selectors import aggregator_of, is_unlinked

    aggregator = aggregator_of(user)
    if is_unlinked(aggregator):  # an aggregator's user linked to no aggregator: neither a VEN nor business logic
        return None
    if aggregator is not None:
        return "ven"
    if actor_can(user, (Cap.MANAGE_EVENTS, Cap.MANAGE_PROGRAMS)):
        return "bl"
    return None


def scopes_for(user, *, openadr_301: bool = False) -> list[str]:
    """The scopes ``user``'s client may hold: ``BL_SCOPES``, ``VEN_SCOPES`` (plus ``read_all`` when
    ``openadr_301``: a token asked of the 3.0.1 endpoint) or none."""
    kind = client_kind(user)
    if kind == "ven":
        return [READ_ALL, *VEN_SCOPES] if openadr_301 else list(VEN_SCOPES)
    return list(BL_SCOPES if kind == "bl" else [])


def _is_301_token_request(request) -> bool:
    """True unless the token request (oauthlib's, with its ``uri``) was made to the OpenADR 3.1 token endpoint."""
    uri = getattr(request, "uri", "") or ""
    return "/3.1/" not in uri


class OpenADRScopes:
    """django-oauth-toolkit scopes backend: the scopes an application may ask for follow its user's kind."""

    def get_all_scopes(self):
        return settings.OAUTH2_PROVIDER["SCOPES"]

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(self.get_all_scopes())
        return scopes_for(application.user, openadr_301=_is_301_token_request(request))

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(self.get_all_scopes())
        return scopes_for(application.user)
