"""The read path of the VTN: what a client may see, filtered and paginated as the spec says (``skip``, ``limit``),
in a constant number of queries whatever the row count.

A business-logic client sees everything; a VEN client its own VEN, resources, reports and subscriptions, every
program, and only the events targeted at it (with only its own resources in their targets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from cpm.base.numbers import ascii_digits
from devices.models import Aggregator
from events.choices import ParticipationStatus
from events.models import Participation
from programs.models import Program

from . import documents as docs
from .models import OadrEvent, OadrEventTarget, Report, Resource, Subscription, Ven


@dataclass(frozen=True)
class Client:
    """Who is calling: ``kind`` ``"bl"`` or ``"ven"``, its user (the actor of its writes), its OAuth client id,
    the scopes of its token and, for a VEN client, its aggregator."""

    kind: str
    user: Any
    client_id: str
    scopes: frozenset[str]
    aggregator: Aggregator | None

    @property
    def is_ven(self) -> bool:
        return self.kind == "ven"


@dataclass(frozen=True)
class TargetFilter:
    """The spec's ``targetType`` / ``targetValues`` query (values OR-ed)."""

    type: str
    values: tuple[str, ...]


def page(qs: QuerySet, skip: int, limit: int) -> list:
    return list(qs[skip:skip + limit])


def has_target(targets: list, wanted: TargetFilter) -> bool:
    """True when one of an object's ``targets`` (values maps) has the wanted type and one of the wanted values."""
    values = set(wanted.values)
    return any(isinstance(t, dict) and t.get("type") == wanted.type and set(map(str, t.get("values") or ())) & values
               for t in targets or ())


def _targeted_page(qs: QuerySet, targets: TargetFilter | None, skip: int, limit: int) -> list:
    """The page ``[skip, skip + limit)`` of the rows of ``qs`` matching ``targets``: the filter is applied first
    (the targets are a JSON list, matched here the same way on SQLite and PostgreSQL: one query for the ids and
    targets, one for the page)."""
    if targets is None:
        return page(qs, skip, limit)
    ids = [pk for pk, value in qs.values_list("pk", "targets").iterator(chunk_size=2000) if has_target(value, targets)]
    wanted = ids[skip:skip + limit]
    by_pk = {row.pk: row for row in qs.model.objects.filter(pk__in=wanted)}
    return [by_pk[pk] for pk in wanted if pk in by_pk]


def programs_list(*, client: Client, targets: TargetFilter | None, skip: int, limit: int) -> list[dict]:
    """Every program (a cpm program is an OpenADR program); programs carry no targets, so a target filter matches
    none."""
    if targets is not None:
        return []
    return [docs.program_doc(p) for p in page(Program.objects.order_by("pk"), skip, limit)]


def program_get(*, client: Client, program_id: str) -> Program | None:
    return Program.objects.filter(pk=int(program_id)).first() if _is_id(program_id) else None


def _is_id(value: str) -> bool:
    return isinstance(value, str) and ascii_digits(value) and len(value) < 18


def _events_qs(client: Client) -> QuerySet:
    qs = OadrEvent.objects.filter(deleted_at__isnull=True)
    target_rows = OadrEventTarget.objects.all()
    if client.is_ven:
        qs = qs.filter(targets__aggregator=client.aggregator)
        target_rows = target_rows.filter(aggregator=client.aggregator)
    return qs.prefetch_related(Prefetch("targets", queryset=target_rows.order_by("aggregator_id"), to_attr="shown"))


def _names_for(targets) -> dict[int, str]:
    ids = {t.aggregator_id for t in targets}
    names = dict(Aggregator.objects.filter(pk__in=ids).values_list("pk", "code"))
    names.update(Ven.objects.filter(aggregator_id__in=ids).values_list("aggregator_id", "ven_name"))
    return names


def event_docs(events: list[OadrEvent]) -> list[dict]:
    names = _names_for([t for e in events for t in e.shown])
    return [docs.event_doc(e, targets=[(names[t.aggregator_id], t.resource_names) for t in e.shown]) for e in events]


def events_list(*, client: Client, program_id: str | None, targets: TargetFilter | None, skip: int,
                limit: int) -> list[dict]:
    """The events the client may see (published, not cancelled), by id; filters: ``programID``, targets
    (``VEN_NAME``, ``RESOURCE_NAME``)."""
    qs = _events_qs(client)
    if program_id is not None:
        if not _is_id(program_id):
            return []
        qs = qs.filter(program_id=int(program_id))
    if targets is not None:
        if targets.type == "VEN_NAME":
            # A VEN matches on the targets it is shown (its own VEN's): another VEN's name must not tell it which
            # of its events that VEN also receives.
            aggs = Ven.objects.filter(ven_name__in=targets.values)
            if client.is_ven:
                aggs = aggs.filter(aggregator=client.aggregator)
            rows = OadrEventTarget.objects.filter(aggregator_id__in=aggs.values("aggregator_id"))
            qs = qs.filter(pk__in=rows.values("oadr_event_id"))
        elif targets.type == "RESOURCE_NAME":
            parts = Participation.objects.filter(device__aggregator_device_id__in=targets.values).exclude(
                status=ParticipationStatus.CANCELLED)
            if client.is_ven:
                parts = parts.filter(device__aggregator=client.aggregator)
            qs = qs.filter(pk__in=parts.values("event_id"))
        else:
            return []
    return event_docs(page(qs.order_by("pk"), skip, limit))


def event_get(*, client: Client, event_id: str) -> OadrEvent | None:
    if not _is_id(event_id):
        return None
    return _events_qs(client).filter(pk=int(event_id)).select_related("event").first()


def vens_qs(client: Client) -> QuerySet:
    qs = Ven.objects.order_by("pk")
    return qs.filter(aggregator=client.aggregator) if client.is_ven else qs


def vens_list(*, client: Client, ven_name: str | None, targets: TargetFilter | None, skip: int,
              limit: int) -> list[dict]:
    qs = vens_qs(client)
    if ven_name is not None:
        qs = qs.filter(ven_name=ven_name)
    return [docs.ven_doc(v) for v in _targeted_page(qs, targets, skip, limit)]


def ven_get(*, client: Client, ven_id: str) -> Ven | None:
    return vens_qs(client).filter(pk=int(ven_id)).first() if _is_id(ven_id) else None


def resources_list(*, ven: Ven, resource_name: str | None, targets: TargetFilter | None, skip: int,
                   limit: int) -> list[dict]:
    qs = Resource.objects.filter(ven=ven).order_by("pk")
    if resource_name is not None:
        qs = qs.filter(resource_name=resource_name)
    return [docs.resource_doc(r) for r in _targeted_page(qs, targets, skip, limit)]


def resource_get(*, ven: Ven, resource_id: str) -> Resource | None:
    if not _is_id(resource_id):
        return None
    return Resource.objects.filter(ven=ven, pk=int(resource_id)).select_related("ven").first()


def resources_of(*, client: Client, ven_id: str | None, resource_name: str | None, skip: int,
                 limit: int) -> list[dict]:
    """OpenADR 3.1's ``/resources``: the resources of the VENs the client may see (a VEN client: its own), by id;
    filters ``venID`` (an unknown or another VEN's id: none) and ``resourceName``."""
    qs = Resource.objects.filter(ven__in=vens_qs(client)).order_by("pk")
    if ven_id is not None:
        if not _is_id(ven_id):
            return []
        qs = qs.filter(ven_id=int(ven_id))
    if resource_name is not None:
        qs = qs.filter(resource_name=resource_name)
    return [docs.resource_doc(r) for r in page(qs, skip, limit)]


def resource_of(*, client: Client, resource_id: str) -> Resource | None:
    """A resource by id among the VENs the client may see (None: unknown or another VEN's)."""
    if not _is_id(resource_id):
        return None
    return Resource.objects.filter(ven__in=vens_qs(client), pk=int(resource_id)).select_related("ven").first()


def client_ids(kind: str, ids: list[str]) -> dict[str, str]:
    """OpenADR 3.1's ``clientID`` of each object (one query): a VEN's and its resources' = the OAuth client that
    registered the VEN (its name when none is recorded), a report's = the reporting client (else its VEN's), a
    subscription's = the subscribing client. ``kind``: ven, resource, report or subscription; ``ids``: object ids."""
    pks = [int(i) for i in ids if _is_id(i)]
    if kind == "ven":
        rows = Ven.objects.filter(pk__in=pks).values_list("pk", "client_id", "ven_name")
    elif kind == "resource":
        rows = Resource.objects.filter(pk__in=pks).values_list("pk", "ven__client_id", "ven__ven_name")
    elif kind == "report":
        rows = Report.objects.filter(pk__in=pks).values_list("pk", "client_id", "ven__client_id")
    else:
        rows = Subscription.objects.filter(pk__in=pks).values_list("pk", "client_id", "client_name")
    return {str(pk): first or second for pk, first, second in rows}


def reports_qs(client: Client) -> QuerySet:
    qs = Report.objects.order_by("pk")
    return qs.filter(ven__aggregator=client.aggregator) if client.is_ven else qs


def reports_list(*, client: Client, program_id: str | None, event_id: str | None, client_name: str | None,
                 skip: int, limit: int) -> list[dict]:
    qs = reports_qs(client)
    for value, field in ((program_id, "program_id"), (event_id, "event_id")):
        if value is not None:
            if not _is_id(value):
                return []
            qs = qs.filter(**{field: int(value)})
    if client_name is not None:
        qs = qs.filter(client_name=client_name)
    return [docs.report_doc(r) for r in page(qs, skip, limit)]


def report_get(*, client: Client, report_id: str) -> Report | None:
    return reports_qs(client).filter(pk=int(report_id)).first() if _is_id(report_id) else None


def subscriptions_qs(client: Client) -> QuerySet:
    qs = Subscription.objects.order_by("pk")
    return qs.filter(aggregator=client.aggregator) if client.is_ven else qs


def subscriptions_list(*, client: Client, program_id: str | None, client_name: str | None,
                       objects: list[str], targets: TargetFilter | None, skip: int, limit: int) -> list[dict]:
    qs = subscriptions_qs(client)
    if program_id is not None:
        if not _is_id(program_id):
            return []
        qs = qs.filter(program_id=int(program_id))
    if client_name is not None:
        qs = qs.filter(client_name=client_name)
    subs = list(qs)
    if objects:
        subs = [s for s in subs if any(set(objects) & set(op.get("objects", ())) for op in s.object_operations)]
    if targets is not None:
        subs = [s for s in subs if has_target(s.targets, targets)]
    return [docs.subscription_doc(s) for s in subs[skip:skip + limit]]


def subscription_get(*, client: Client, subscription_id: str) -> Subscription | None:
    if not _is_id(subscription_id):
        return None
    return subscriptions_qs(client).filter(pk=int(subscription_id)).first()

