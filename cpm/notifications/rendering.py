"""Wording of messages: the program's templates (``MessageTemplate``, edited in the admin) or these defaults,
rendered with Django's template engine as plain text (no HTML escaping: e-mails and SMS are text)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.template import Context, Engine, Template

from .choices import MessageKind as K


@dataclass(frozen=True)
class Wording:
    subject: str
    body: str
    sms_body: str


_SIGN = "\n\n-- {{ program_name }}"
# Sent past the program's opt-out cut-off, a notice or reminder has no link (``opt_out_url`` empty) and says so.
_OPT = ("{% if opt_out_url %}\n\nDon't want to take part this time? Opt out of this event with one click (until "
        "{{ opt_out_expires }}):\n{{ opt_out_url }}{% elif opt_out_closed %}\n\nOpt-outs for this event closed at "
        "{{ opt_out_closed }}.{% endif %}")
_SMS_OPT = "{% if opt_out_url %} Opt out: {{ opt_out_url }}{% endif %}"

DEFAULTS: dict[str, Wording] = {
    K.EVENT_NOTICE: Wording(
        "{{ program_name }}: energy event {{ event_date }}",
        "Hello {{ customer_name }},\n\n{{ program_name }} calls an energy event on {{ event_window }}.\n"
        "{{ incentive }}" + _OPT + _SIGN,
        "{{ program_name }}: event {{ event_window }}. {{ incentive_short }}" + _SMS_OPT),
    K.REMINDER: Wording(
        "Reminder: {{ program_name }} event {{ event_day_word }} {{ event_window }}",
        "Hello {{ customer_name }},\n\nA reminder: the {{ program_name }} event runs {{ event_window }}." + _OPT
        + _SIGN,
        "Reminder: {{ program_name }} event {{ event_window }}." + _SMS_OPT),
    K.CANCELLATION: Wording(
        "Cancelled: {{ program_name }} event {{ event_date }}",
        "Hello {{ customer_name }},\n\nThe {{ program_name }} event of {{ event_window }} is cancelled. "
        "No action is needed." + _SIGN,
        "{{ program_name }}: the event of {{ event_window }} is cancelled."),
    K.OPT_OUT_CONFIRMATION: Wording(
        "You opted out of the {{ program_name }} event {{ event_date }}",
        "Hello {{ customer_name }},\n\nYou are opted out of the {{ program_name }} event of {{ event_window }}. "
        "You stay enrolled for the next events." + _SIGN,
        "{{ program_name }}: you are opted out of the event {{ event_window }}."),
    K.ENROLLMENT_APPROVED: Wording(
        "Welcome to {{ program_name }}",
        "Hello {{ customer_name }},\n\nYour enrollment in {{ program_name }} is approved from {{ effective_date }}."
        "\n{{ incentive }}" + _SIGN,
        "{{ program_name }}: your enrollment is approved from {{ effective_date }}."),
    K.ENROLLMENT_REFUSED: Wording(
        "Your {{ program_name }} enrollment",
        "Hello {{ customer_name }},\n\nWe could not enroll you in {{ program_name }}: {{ reason }}." + _SIGN,
        "{{ program_name }}: we could not enroll you ({{ reason }})."),
    K.ENROLLMENT_ENDED: Wording(
        "Your {{ program_name }} enrollment has ended",
        "Hello {{ customer_name }},\n\nYour enrollment in {{ program_name }} ended on {{ end_date }}: {{ reason }}."
        + _SIGN,
        "{{ program_name }}: your enrollment ended on {{ end_date }}."),
    K.EVENT_SUMMARY: Wording(
        "Your results: {{ program_name }} event {{ event_date }}",
        "Hello {{ customer_name }},\n\nThank you for taking part in the {{ program_name }} event of "
        "{{ event_window }}.\nEnergy avoided: {{ kwh_avoided }}\nYour credit: {{ credit }}" + _SIGN,
        "{{ program_name }} event {{ event_date }}: you avoided {{ kwh_avoided }} and earned {{ credit }}."),
    K.SEASON_STATEMENT: Wording(
        "Your {{ program_name }} {{ season_name }} statement",
        "Hello {{ customer_name }},\n\nYour {{ program_name }} credits for {{ season_name }} "
        "({{ period }}): {{ season_total }}, on your bill." + _SIGN,
        "{{ program_name }} {{ season_name }}: {{ season_total }} in bill credits."),
}

_ENGINE = Engine(autoescape=False, debug=False, libraries={}, builtins=[])


@lru_cache(maxsize=512)
def compile_template(text: str) -> Template:
    """A compiled template (cached by text: 100,000 notices of one event compile the wording once)."""
    return _ENGINE.from_string(text)


def render(text: str, context: dict) -> str:
    """``text`` (Django template syntax) with ``context``; unknown variables render empty."""
    return compile_template(text).render(Context(context, autoescape=False)).strip()
