"""Which OAuth scopes a client may hold (django-oauth-toolkit's scopes backend, ``OAUTH2_PROVIDER``).

A client whose application belongs to an aggregator's API user is a VEN client: ``VEN_SCOPES``. A client whose
application belongs to a user who may manage events or programs is business logic (the utility): ``BL_SCOPES``.
Anybody else gets no scope, so its token opens nothing under ``/openadr3``. A token request asking for a scope
outside these is refused by the token endpoint (``invalid_scope``).
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
    from devices.selectors import aggregator_of

    if aggregator_of(user) is not None:
        return "ven"
    if actor_can(user, (Cap.MANAGE_EVENTS, Cap.MANAGE_PROGRAMS)):
        return "bl"
    return None


def scopes_for(user) -> list[str]:
    kind = client_kind(user)
    return list(BL_SCOPES if kind == "bl" else VEN_SCOPES if kind == "ven" else [])


class OpenADRScopes:
    """django-oauth-toolkit scopes backend: the scopes an application may ask for follow its user's kind."""

    def get_all_scopes(self):
        return settings.OAUTH2_PROVIDER["SCOPES"]

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(self.get_all_scopes())
        return scopes_for(application.user)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return self.get_available_scopes(application, request)
