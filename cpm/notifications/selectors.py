"""Reads of customer notifications: a program's policy and wording, customers' contacts, message lists."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from cpm.base.money import format_money, format_rate
from enrollments.models import Customer
from programs.choices import IncentiveBasis, IncentiveKind
from programs.models import IncentiveRule, ParticipationRule, Program

from . import rules
from .choices import CHANNELS_OF, Channel, ContactChoice
from .models import ContactPreference, Message, MessageTemplate, NotificationPolicy
from .rendering import DEFAULTS, Wording


def policy_of(program: Program) -> rules.Policy:
    """The program's sending rules (``NotificationPolicy``) or the defaults."""
    p = NotificationPolicy.objects.filter(program=program).first()
    if p is None:
        return rules.Policy()
    return rules.Policy(notice_lead_minutes=p.notice_lead_minutes, reminder_lead_minutes=p.reminder_lead_minutes,
                        urgent_lead_minutes=p.urgent_lead_minutes, quiet_start=p.quiet_start,
                        quiet_end=p.quiet_end, weekly_cap=p.weekly_cap, opt_out_link_hours=p.opt_out_link_hours)


def min_notice_minutes(program: Program, on_day) -> int | None:
    """The participation rule in effect on ``on_day`` (local date): its minimum notice in minutes, or None."""
    rule = (ParticipationRule.objects.filter(program=program, effective_from__lte=on_day)
            .order_by("-effective_from").first())
    return rule.min_notice_minutes if rule else None


def opt_out_cutoff_minutes(program: Program, on_day) -> int | None:
    """The participation rule in effect on ``on_day`` (local date): how many minutes before the start opt-out
    requests close, or None (until the end)."""
    rule = (ParticipationRule.objects.filter(program=program, effective_from__lte=on_day)
            .order_by("-effective_from").first())
    return rule.opt_out_cutoff_minutes if rule else None


def wordings_of(program: Program) -> dict[str, Wording]:
    """Every kind's wording for the program: its templates over the defaults."""
    out = dict(DEFAULTS)
    for t in MessageTemplate.objects.filter(program=program):
        out[t.kind] = Wording(t.subject, t.body, t.sms_body)
    return out


_BASIS_WORDS = {
    IncentiveBasis.PER_KWH: "per kWh you avoid below your usual use",
    IncentiveBasis.PER_KW: "per kW of average reduction",
    IncentiveBasis.FLAT: "for each event",
    IncentiveBasis.PER_DEVICE: "per device for each event",
    IncentiveBasis.PER_KW_ENROLLED: "per kW of your enrolled capacity for each event",
    IncentiveBasis.PER_KWH_ENROLLED: "per kWh of your enrolled storage for each event",
}


def incentive_text(program: Program) -> tuple[str, str]:
    """``(sentence, short)`` saying what an event pays, from the program's per-event and performance incentive
    rules (``"You earn $1.00 per kWh you avoid below your usual use."``); empty when none pays per event."""
    parts = []
    for r in IncentiveRule.objects.filter(program=program, kind__in=[
            IncentiveKind.PER_EVENT, IncentiveKind.PERFORMANCE_KWH, IncentiveKind.PERFORMANCE_KW]).order_by("id"):
        if r.basis == IncentiveBasis.PRICE_SET:
            parts.append("the event's price for each kWh you avoid")
        else:
            # A price per unit is shown as set, never rounded to cents ($0.125 per kWh); a flat sum as money.
            amount = format_money(r.amount) if r.basis == IncentiveBasis.FLAT else format_rate(r.amount)
            parts.append(f"{amount} {_BASIS_WORDS.get(r.basis, r.get_basis_display())}")
    if not parts:
        return "", ""
    return f"You earn {' and '.join(parts)}.", f"Earn {parts[0]}."


def contacts(customer_ids: Iterable[int], *, program: Program) -> dict[int, tuple[tuple[str, ...], str, str]]:
    """For each customer: ``(channels, e-mail, phone)``; channels from the program's preference, else the general
    one, else e-mail if an address is on file, else SMS if a phone; a channel without an address is dropped."""
    ids = list(customer_ids)
    prefs: dict[int, str] = {}
    for cid, channel in (ContactPreference.objects.filter(customer_id__in=ids, program__isnull=True)
                         .values_list("customer_id", "channel")):
        prefs[cid] = channel
    for cid, channel in (ContactPreference.objects.filter(customer_id__in=ids, program=program)
                         .values_list("customer_id", "channel")):
        prefs[cid] = channel
    out = {}
    for cid, email, phone in Customer.objects.filter(pk__in=ids).values_list("pk", "email", "phone"):
        choice = prefs.get(cid) or (ContactChoice.EMAIL if email else ContactChoice.SMS if phone
                                    else ContactChoice.NONE)
        channels = tuple(c for c in CHANNELS_OF[choice]
                         if (c == Channel.EMAIL and email) or (c == Channel.SMS and phone))
        out[cid] = (channels, email, phone)
    return out


def message_list(*, customer: Customer | None = None) -> QuerySet[Message]:
    """Messages newest first, with what lists show (program, event)."""
    qs = Message.objects.select_related("program", "event", "customer")
    if customer is not None:
        qs = qs.filter(customer=customer)
    return qs.order_by("-due_at", "-id")


def zone_of(program: Program) -> ZoneInfo:
    return ZoneInfo(program.time_zone)
