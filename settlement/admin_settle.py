"""Settlement run from the admin (issue 17.4), on the settlement batches' list: "Settle events" (first settlement of
completed events, or re-settlement of events already settled: ``event_settle``, use case ``event.settle``) and
"Settle a season" (``season_settle``, use case ``season.settle``), both Cap.RUN_SETTLEMENT and called with
``actor=request.user``. The events' admin does not import settlement, so the pages live here."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from cpm.base.admin import admin_now, domain_error_text
from cpm.base.capabilities import may
from cpm.base.errors import DomainError
from events.choices import EventStatus
from events.models import Event
from programs.models import Program, Season

from .choices import BatchKind
from .models import SettlementBatch


class EventChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.program.code}: {obj}"


class SettleEventsForm(forms.Form):
    events = EventChoice(queryset=Event.objects.filter(status=EventStatus.COMPLETED).select_related("program")
                         .order_by("-start"), widget=forms.SelectMultiple(attrs={"size": 12}),
                         help_text="Completed events. One never settled is settled; one already settled is "
                                   "re-settled (new meter data or prices: approved settlements that change are "
                                   "re-opened).")


class SettleSeasonForm(forms.Form):
    program = forms.ModelChoiceField(queryset=Program.objects.order_by("code"))
    season = forms.ModelChoiceField(queryset=Season.objects.select_related("program").order_by("-start_date"),
                                    help_text="A season of the program that has ended.")

    def clean(self):
        data = super().clean()
        if data.get("program") and data.get("season") and data["season"].program_id != data["program"].pk:
            self.add_error("season", f"{data['season']} is not a season of {data['program'].code}.")
        return data


def _page(modeladmin, request, form, title, intro):
    context = {**modeladmin.admin_site.each_context(request), "title": title, "form": form, "intro": intro,
               "opts": modeladmin.model._meta}
    return TemplateResponse(request, "admin/settlement/settle_form.html", context)


def _back(request):
    return HttpResponseRedirect(reverse("admin:settlement_settlementbatch_changelist"))


def settle_events_view(modeladmin, request):
    if not may(request.user, "event.settle"):
        raise PermissionDenied
    from .services import event_settle

    form = SettleEventsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        for event in form.cleaned_data["events"]:
            again = SettlementBatch.objects.filter(kind=BatchKind.EVENT, event=event).exists()
            try:
                batch = event_settle(event=event, now=admin_now(), actor=request.user, recalculate=again)
            except DomainError as exc:
                modeladmin.message_user(request, f"{event}: {domain_error_text(exc)}", messages.ERROR)
                continue
            modeladmin.message_user(request, f"{event}: {'re-settlement' if again else 'settlement'} batch "
                                             f"{batch.pk} ({batch.get_status_display().lower()}).", messages.SUCCESS)
        return _back(request)
    return _page(modeladmin, request, form, "Settle events",
                 "Settles each selected event in a batch (its progress on the batches' list).")


def settle_season_view(modeladmin, request):
    if not may(request.user, "season.settle"):
        raise PermissionDenied
    from .services import season_settle

    form = SettleSeasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        program, season = form.cleaned_data["program"], form.cleaned_data["season"]
        try:
            batch = season_settle(program=program, season=season, now=admin_now(), actor=request.user)
        except DomainError as exc:
            form.add_error(None, domain_error_text(exc))
        else:
            modeladmin.message_user(request, f"Season settlement batch {batch.pk} of {season} "
                                             f"({batch.get_status_display().lower()}).", messages.SUCCESS)
            return _back(request)
    return _page(modeladmin, request, form, "Settle a season",
                 "Customer settlements of the season for every account of the program (once per season).")
