"""Template filters: show UTC instants in a program's zone."""

from django import template

from cpm.base.admintime import display_zone
from cpm.base.money import format_money, format_quantity
from cpm.base.timeutils import format_local, format_local_window, zone

register = template.Library()


@register.filter
def local(value, tz_name: str):
    """``{{ event.start|local:program.time_zone }}`` -> "2026-07-15 16:00 PDT"."""
    if not value:
        return ""
    return value.astimezone(zone(tz_name)).strftime("%Y-%m-%d %H:%M %Z")


@register.filter
def local_date(value, tz_name: str):
    """``{{ entry.at|local_date:program.time_zone }}`` -> "2026-07-15": the day in the program's zone, not UTC's."""
    if not value:
        return ""
    return value.astimezone(zone(tz_name)).strftime("%Y-%m-%d")


@register.simple_tag
def local_window(start, end, tz_name: str):
    """``{% local_window p.start p.end program.time_zone %}`` -> "2026-07-15 16:00 – 19:00 PDT", both dates when the
    window crosses midnight or a clock change."""
    if not start or not end:
        return ""
    return format_local_window(start, end, tz_name)


@register.filter
def local_default(value):
    """A time that belongs to no program (a device's last contact): in ``CPM_DISPLAY_TIME_ZONE``, labelled."""
    if not value:
        return ""
    return format_local(value, display_zone())


@register.filter
def money(value):
    """``{{ s.amount|money }}`` -> "$5.58" (two decimals, currency, thousands separators)."""
    return format_money(value)


@register.filter
def kwh(value):
    """``{{ s.kwh_avoided|kwh }}`` -> "4.5 kWh"."""
    return format_quantity(value, "kWh")


@register.filter
def kw(value):
    """``{{ s.kw_drop_avg|kw }}`` -> "1.5 kW"."""
    return format_quantity(value, "kW")
