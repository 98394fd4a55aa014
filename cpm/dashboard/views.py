"""Dashboard pages (read only): the program dashboard with its forecast form, and an event's page. Staff users
holding the view permissions of programs, events and event settlements (program administrators, CSRs, settlement
analysts, auditors); others are refused (403); a user who may not sign in to the admin is sent to its login."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from cpm.base.admintime import display_zone
from cpm.base.timeutils import local_wall_to_utc, wall_time_exists, zone
from devices.choices import DeviceType
from events.models import Event
from programs.choices import ProgramStatus
from programs.models import Program
from settlement.forecast import available_kw_forecast
from settlement.measurement import DEVICE_TELEMETRY

from . import charts, selectors

DASHBOARD_PERMISSIONS = ("programs.view_program", "events.view_event", "settlement.view_eventsettlement")


def dashboard_view(view):
    return staff_member_required(permission_required(DASHBOARD_PERMISSIONS, raise_exception=True)(view))


class ForecastForm(forms.Form):
    program = forms.ModelChoiceField(queryset=Program.objects.exclude(status=ProgramStatus.CLOSED).order_by("name"))
    day = forms.DateField(label="Day (program's local date)", widget=forms.DateInput(attrs={"type": "date"}))
    start = forms.TimeField(label="Start (program's local time)", widget=forms.TimeInput(attrs={"type": "time"}))
    end = forms.TimeField(label="End (program's local time)", widget=forms.TimeInput(attrs={"type": "time"}),
                          help_text="Not included; earlier than Start: the next day (22:00 to 02:00 is four hours).")
    device_type = forms.ChoiceField(choices=[("", "All device types"), *DeviceType.choices], required=False)
    territory = forms.CharField(required=False, max_length=64, help_text="Service territory code; empty = all.")

    def clean(self):
        """The window ``[start, end)`` on ``day`` in the program's zone, as ``start_utc`` / ``end_utc``: an End
        earlier than Start is on the next day; an End equal to Start is refused on ``end`` (it was read as 24 hours,
        though it may as well mean an empty window)."""
        data = super().clean()
        program, day = data.get("program"), data.get("day")
        if data.get("start") is not None and data.get("start") == data.get("end"):
            self.add_error("end", f"End must differ from Start ({data['start']:%H:%M}). An End earlier than Start is "
                                  "on the next day (e.g. 22:00 to 02:00).")
            return data
        if not program or not day or not data.get("start") or not data.get("end"):
            return data
        try:
            return self._in_utc(data, program, day)
        except OverflowError:  # 9999-12-31 late in the evening is past the calendar in UTC
            self.add_error("day", f"{day} is out of range (its UTC times fall outside years 1 to 9999).")
            return data

    def _in_utc(self, data, program, day):
        tz = zone(program.time_zone)
        # An End earlier than Start is on the next day, and is checked on that day (a DST change may fall there).
        end_day = day if data["end"] > data["start"] else day + dt.timedelta(days=1)
        for name, on in (("start", day), ("end", end_day)):
            value = data[name]
            if not wall_time_exists(on, value, tz):
                self.add_error(name, f"{on} {value:%H:%M} does not exist in {program.time_zone} (clocks go forward).")
                return data
            if local_wall_to_utc(on, value, tz, fold=0) != local_wall_to_utc(on, value, tz, fold=1):
                self.add_error(name, f"{on} {value:%H:%M} happens twice in {program.time_zone} (clocks go back): "
                                     "pick another time.")
                return data
        data["start_utc"] = local_wall_to_utc(day, data["start"], tz)
        data["end_utc"] = local_wall_to_utc(end_day, data["end"], tz)
        return data


class AsOfForm(forms.Form):
    as_of = forms.DateField(label="As of (end of day)", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="See the programs as they stood at the end of this day (e.g. a past season); "
                                      "empty: now.")


def _as_of(form: AsOfForm) -> dt.datetime:
    """The instant the dashboard shows: now, or the end of the day asked for (its last instant in
    ``CPM_DISPLAY_TIME_ZONE``: a program elsewhere sees that instant in its own zone)."""
    day = form.cleaned_data.get("as_of") if form.is_valid() else None
    if day is None:
        return timezone.now()
    try:
        return local_wall_to_utc(day + dt.timedelta(days=1), dt.time(0), display_zone()) - dt.timedelta(microseconds=1)
    except OverflowError:  # the last day of year 9999: there is no end of it to show
        form.add_error("as_of", f"{day} is out of range.")
        return timezone.now()


@dashboard_view
def dashboard(request):
    as_of = AsOfForm({"as_of": request.GET.get("as_of", "")})
    now = _as_of(as_of)
    cards = selectors.program_cards(now=now)
    for card in cards:
        card.events_chart = charts.events_chart_svg(
            [(r.event.name, float(r.event.forecast_kw) if r.event.forecast_kw is not None else None, float(r.kw_drop))
             for r in reversed(card.latest)], title=f"{card.program.name}: forecast vs delivered kW, latest events")
        s = card.season
        card.season_chart = charts.season_chart_svg(
            [("Events", s.events, s.max_events), ("Event hours", float(s.hours), float(s.max_hours or 0) or None),
             ("Credits $", float(s.credits), float(s.credits_cap or 0) or None)],
            title=f"{s.name}: season to date") if s else ""
    form = ForecastForm(request.GET if "program" in request.GET else None)  # not bound by ?as_of= alone
    forecast = None
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        forecast = available_kw_forecast(program=d["program"], start=d["start_utc"], end=d["end_utc"], now=now,
                                         device_types=[d["device_type"]] if d["device_type"] else [],
                                         territories=[d["territory"]] if d["territory"] else [])
    return render(request, "dashboard/index.html", {
        **admin.site.each_context(request), "title": "Program dashboard", "cards": cards, "now": now,
        "form": form, "forecast": forecast, "as_of": as_of})


@dashboard_view
def event_detail(request, event_id: int):
    try:
        page = selectors.event_page(event_id=event_id)
    except Event.DoesNotExist as exc:
        raise Http404("No such event") from exc
    event = page.event
    tz = zone(event.program.time_zone)
    device = event.program.performance_measurement == DEVICE_TELEMETRY
    chart = charts.fleet_chart_svg(
        page.interval_starts, page.fleet, tz=tz, window=(event.start, event.end), device_telemetry=device,
        title=(f"{event.name}: fleet device output vs its baseline" if device else
               f"{event.name}: fleet baseline vs actual") + f", {event.start.astimezone(tz):%Y-%m-%d}")
    return render(request, "dashboard/event.html", {
        **admin.site.each_context(request), "title": f"Event: {event.name}", "page": page, "event": event,
        "chart": chart, "tz": event.program.time_zone})
