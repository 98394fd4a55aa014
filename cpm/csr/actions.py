"""The CSR page's write actions: each is the adapter of one registered use case (``cpm.base.capabilities``).

The page offers an action only to a user who may run its use case, and where it does not, it says why in words
("Enrolling needs the capability 'Request enrollments on a customer's behalf'; your role does not have it."). The
view of the action asks the same question before calling the service (403 otherwise), and the service checks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cpm.base.capabilities import CAPABILITY_LABELS, USE_CASES, Cap, actor_can, may


@dataclass(frozen=True)
class CsrAction:
    """One action of the page: its use case, and how a sentence names it (``doing``: "Enrolling")."""

    key: str
    use_case: str
    doing: str
    # The capabilities the use case is registered with (cpm/base/capabilities.py USE_CASES is the truth: these are
    # the same, which tests/cpm/test_use_case_registry.py checks). They are read only while the service module
    # registering the use case has not been imported; the page's views import them, so in practice never.
    registered_with: tuple[Cap, ...]

    def capabilities(self) -> tuple[Cap, ...]:
        found = USE_CASES.get(self.use_case)
        return found.capabilities if found else self.registered_with

    def allowed(self, user: Any) -> bool:
        if self.use_case in USE_CASES:
            return may(user, self.use_case)
        return actor_can(user, self.registered_with)

    def refusal(self) -> str:
        """Why the action is not offered, in words naming the capability (or capabilities) it needs."""
        labels = [f"'{CAPABILITY_LABELS.get(cap, str(cap))}'" for cap in self.capabilities()]
        if len(labels) == 1:
            return f"{self.doing} needs the capability {labels[0]}; your role does not have it."
        none = "neither" if len(labels) == 2 else "none of them"
        return f"{self.doing} needs the capability {', '.join(labels[:-1])} or {labels[-1]}; your role has {none}."


ENROLL = CsrAction("enroll", "enrollment.request", "Enrolling", (Cap.REQUEST_ENROLLMENTS,))
UNENROLL = CsrAction("unenroll", "enrollment.unenroll", "Unenrolling", (Cap.MANAGE_ENROLLMENTS,))
OPT_OUT = CsrAction("opt_out", "participation.opt_out", "Opting a device out of an event",
                    (Cap.OPT_OUT_ON_BEHALF, Cap.REPORT_OUTCOMES))
UNAVAILABILITY = CsrAction("unavailability", "unavailability.create", "Declaring unavailability",
                           (Cap.OPT_OUT_ON_BEHALF,))

CONTACT_PREFERENCE = CsrAction("contact_preference", "contact_preference.set",
                               "Changing how the customer hears from us",
                               (Cap.MAINTAIN_CUSTOMERS, Cap.MANAGE_ENROLLMENTS))

ACTIONS: dict[str, CsrAction] = {a.key: a for a in (ENROLL, UNENROLL, OPT_OUT, UNAVAILABILITY, CONTACT_PREFERENCE)}


@dataclass(frozen=True)
class Offer:
    """What the page shows for one action: the form (``allowed``) or the sentence saying why not (``why``)."""

    allowed: bool
    why: str = ""


def offers(user: Any) -> dict[str, Offer]:
    """``{"enroll": Offer(...), ...}`` for ``user``: the template shows a form or the reason."""
    return {key: Offer(True) if action.allowed(user) else Offer(False, action.refusal())
            for key, action in ACTIONS.items()}
