"""Capabilities on the write path: who may do what, checked where the write happens, whichever door is used.

Every write service is a *use case* registered here with the capability it needs::

    @use_case("event.cancel", Cap.MANAGE_EVENTS)
    def event_cancel(*, event, reason, now, actor) -> Event: ...

The decorator refuses (``PermissionDenied``, HTTP 403 in the API, a message in the admin) an actor without the
capability before the service body runs, so the admin, the API, the CSR page, Celery tasks and management commands
all get the same answer. Adapters ask the same registry to decide what to offer (``actor_can``).

Actors are explicit: a Django user (its role groups grant capabilities as permissions ``cpm.<capability>``,
``cpm/base/roles.py``), a named ``SystemActor`` (the tick, a Celery task, an operator's management command, the
demo), which holds every capability, or a ``CustomerActor`` (a customer through a signed link cpm sent them, e.g.
the opt-out link of an event notice), which holds only the capabilities it names, on the customer's own objects.
``None`` or a bare string is refused: system work must say who it is.

``USE_CASES`` lists every write use case with its capability: the set of guarded writes is visible in one place
(README "Roles" is checked against it by a test).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from .errors import PermissionDenied


class Cap(StrEnum):
    """Capabilities: permission codenames of the ``cpm`` app (``cpm.<value>``) granted to roles."""

    MANAGE_PROGRAMS = "manage_programs"
    MAINTAIN_CUSTOMERS = "maintain_customers"
    MANAGE_DEVICES = "manage_devices"
    REQUEST_ENROLLMENTS = "request_enrollments"
    MANAGE_ENROLLMENTS = "manage_enrollments"
    APPROVE_ENROLLMENTS = "approve_enrollments"
    MANAGE_EVENTS = "manage_events"
    OPT_OUT_ON_BEHALF = "opt_out_on_behalf"
    REPORT_OUTCOMES = "report_outcomes"
    LOAD_METER_DATA = "load_meter_data"
    RUN_SETTLEMENT = "run_settlement"
    APPROVE_SETTLEMENTS = "approve_settlements"
    EXPORT_CREDITS = "export_credits"
    PULL_BILL_CREDITS = "pull_bill_credits"
    # Not writes, but capabilities of the same kind:
    VIEW_PERSONAL_DATA = "view_personal_data"
    USE_CSR_PAGE = "use_csr_page"


CAPABILITY_LABELS: dict[Cap, str] = {
    Cap.MANAGE_PROGRAMS: "Define programs, seasons, participation and incentive rules, questions, exclusions, price "
                         "sets and aggregators",
    Cap.MAINTAIN_CUSTOMERS: "Maintain customers, accounts, premises and service points (CIS)",
    Cap.MANAGE_DEVICES: "Register, install, remove and change controllable devices",
    Cap.REQUEST_ENROLLMENTS: "Request enrollments on a customer's behalf",
    Cap.MANAGE_ENROLLMENTS: "Unenroll, cancel requests, add, replace or transfer enrolled devices",
    Cap.APPROVE_ENROLLMENTS: "Approve, reject, suspend and resume enrollments",
    Cap.MANAGE_EVENTS: "Create, schedule, reserve, dispatch and cancel events; retry dispatch messages",
    Cap.OPT_OUT_ON_BEHALF: "Opt a customer's device out of an event; declare unavailability",
    Cap.REPORT_OUTCOMES: "Report device outcomes and device opt-outs for events (aggregators)",
    Cap.LOAD_METER_DATA: "Load interval meter data",
    Cap.RUN_SETTLEMENT: "Run event and season settlement",
    Cap.APPROVE_SETTLEMENTS: "Approve and reverse settlements",
    Cap.EXPORT_CREDITS: "Create bill-credit export batches",
    Cap.PULL_BILL_CREDITS: "Pull, acknowledge and reject bill-credit export batches",
    Cap.VIEW_PERSONAL_DATA: "See customers' unmasked contact details",
    Cap.USE_CSR_PAGE: "Use the CSR customer program page",
}


def permission_name(cap: Cap | str) -> str:
    """``Cap.MANAGE_EVENTS`` -> ``"cpm.manage_events"`` (the Django permission a role grants)."""
    return f"cpm.{Cap(cap).value}"


@dataclass(frozen=True)
class SystemActor:
    """A named, non-human actor (the events tick, a Celery task, an operator's command, the demo, a benchmark).

    It holds every capability: it is trusted code started by the operator, never a request. ``name`` is what the
    audit trail shows (``system:<name>``).
    """

    name: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("A system actor needs a name.")

    def __str__(self) -> str:
        return f"system:{self.name}"

    @property
    def label(self) -> str:
        return str(self)

    def has_capability(self, cap: Cap | str) -> bool:
        return True


@dataclass(frozen=True)
class CustomerActor:
    """A customer acting for themselves through a signed link in a message cpm sent them (the opt-out link of an
    event notice, ``cpm.notifications``): no login, no user row.

    It holds only the capabilities listed in ``capabilities`` (by default ``OPT_OUT_ON_BEHALF``: the customer opts
    themselves out), and services that accept it must also check that the object is the customer's own (the
    events opt-out service does: ``customer_id``). ``via`` says how the customer came (``"opt-out link"``); the
    audit trail shows ``customer:<id> (<via>)``.
    """

    customer_id: int
    via: str
    capabilities: frozenset = frozenset({Cap.OPT_OUT_ON_BEHALF})

    def __post_init__(self) -> None:
        if not self.customer_id or not self.via.strip():
            raise ValueError("A customer actor needs the customer's id and how they came (via).")

    def __str__(self) -> str:
        return f"customer:{self.customer_id} ({self.via})"

    @property
    def label(self) -> str:
        return str(self)

    def has_capability(self, cap: Cap | str) -> bool:
        return Cap(cap) in self.capabilities


def system_actor(name: str) -> SystemActor:
    """A named system actor, e.g. ``system_actor("events.tick")`` or ``system_actor("command:import_cis")``."""
    return SystemActor(name)


def actor_can(actor: Any, cap: Cap | str | Iterable[Cap | str]) -> bool:
    """True if ``actor`` (a user or a ``SystemActor``) holds ``cap`` (or, for several, any of them).

    An inactive or anonymous user, ``None`` and strings hold nothing. A superuser holds everything.
    """
    caps = (cap,) if isinstance(cap, str) else tuple(cap)
    if isinstance(actor, SystemActor):
        return True
    if isinstance(actor, CustomerActor):
        return any(actor.has_capability(c) for c in caps)
    if actor is None or isinstance(actor, str):
        return False
    if not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", False):
        return False
    return any(actor.has_perm(permission_name(c)) for c in caps)


def require(actor: Any, cap: Cap | str | Iterable[Cap | str], *, use_case: str = "") -> None:
    """Raise ``PermissionDenied`` naming the capability unless ``actor`` holds ``cap`` (or one of several)."""
    if actor is None or isinstance(actor, str):
        raise PermissionDenied(
            f"{use_case or 'This change'} needs a named actor (a user or a system actor), not {actor!r}.",
            code="actor_required")
    if not actor_can(actor, cap):
        caps = (cap,) if isinstance(cap, str) else tuple(cap)
        names = " or ".join(f"'{CAPABILITY_LABELS.get(Cap(c), c)}'" for c in caps)
        who = getattr(actor, "get_username", lambda: str(actor))()
        raise PermissionDenied(f"{who} may not do this ({use_case}): it needs the capability {names}.",
                               code="capability_required")


@dataclass(frozen=True)
class UseCase:
    """One guarded write: its name (``event.cancel``), the capabilities any one of which allows it, the service."""

    name: str
    capabilities: tuple[Cap, ...]
    service: str
    description: str = ""


USE_CASES: dict[str, UseCase] = {}

F = TypeVar("F", bound=Callable[..., Any])


def use_case(name: str, *caps: Cap) -> Callable[[F], F]:
    """Register the decorated service as the write use case ``name`` needing any one of ``caps``.

    The service must take a keyword-only ``actor``; the check runs before its body. The undecorated function is
    ``fn.__wrapped__`` (for a service that already checked and composes another one: pass the same actor instead
    whenever that actor must also hold the inner capability).
    """
    if not caps:
        raise ValueError(f"use case {name}: name at least one capability")

    def decorate(fn: F) -> F:
        if "actor" not in inspect.signature(fn).parameters:
            raise TypeError(f"use case {name}: {fn.__qualname__} takes no 'actor'")
        if name in USE_CASES and USE_CASES[name].service != f"{fn.__module__}.{fn.__qualname__}":
            raise ValueError(f"use case {name} registered twice")
        USE_CASES[name] = UseCase(name=name, capabilities=tuple(caps), service=f"{fn.__module__}.{fn.__qualname__}",
                                  description=(inspect.getdoc(fn) or "").split("\n")[0])

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            require(kwargs.get("actor"), caps, use_case=name)
            return fn(*args, **kwargs)

        guarded.use_case = name  # type: ignore[attr-defined]
        guarded.capabilities = tuple(caps)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def capabilities_of(use_case_name: str) -> tuple[Cap, ...]:
    """The capabilities of a registered use case (``KeyError`` for an unknown one: adapters name real ones)."""
    return USE_CASES[use_case_name].capabilities


def may(actor: Any, use_case_name: str) -> bool:
    """Whether ``actor`` may run the registered use case (what adapters offer; the service checks again)."""
    return actor_can(actor, capabilities_of(use_case_name))
