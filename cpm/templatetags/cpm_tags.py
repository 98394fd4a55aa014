"""Template filters: show UTC instants in a program's zone."""

from django import template

from cpm.base.timeutils import zone

register = template.Library()


@register.filter
def local(value, tz_name: str):
    """``{{ event.start|local:program.time_zone }}`` -> "2026-07-15 16:00 PDT"."""
    if not value:
        return ""
    return value.astimezone(zone(tz_name)).strftime("%Y-%m-%d %H:%M %Z")
