"""Admin of the programs app.

Programs are edited with their seasons, participation rules, incentive rules and questions inline; the inline forms
run the same pure checks as the services (``programs.rules``) so the admin cannot store what the API refuses. The
status is read-only and changes only through the actions (activate, suspend, resume, close), which call services.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from cpm.base.admin import AuditHistoryAdmin
from cpm.base.errors import DomainError, DomainValidationError

from . import rules, services
from .models import (
    IncentiveRule,
    IntervalPrice,
    IntervalPriceSet,
    MutualExclusion,
    ParticipationRule,
    Program,
    QualificationQuestion,
    Season,
)


def _apply_errors(form: forms.ModelForm, errors: dict[str, list[str]]) -> None:
    for field, messages_ in errors.items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)


class RuleCheckedForm(forms.ModelForm):
    """A model form that also runs a pure validator of ``programs.rules`` on the cleaned values."""

    pure_validator = None

    def clean(self):
        cleaned = super().clean()
        if self.pure_validator and not self.errors:
            values = {name: getattr(self.instance, name, None) for name in
                      (f.name for f in self._meta.model._meta.concrete_fields)}
            values.update(cleaned)
            values["price_set_id"] = None
            _apply_errors(self, type(self).pure_validator(values))
        return cleaned


class ProgramForm(forms.ModelForm):
    class Meta:
        model = Program
        fields = list(services.PROGRAM_FIELDS)

    def clean(self):
        cleaned = super().clean()
        values = {k: v for k, v in cleaned.items() if k in services.PROGRAM_FIELDS}
        if self.instance.pk and self.instance.status != "draft":
            for field in services.FROZEN_AFTER_DRAFT:
                if field in values and values[field] != getattr(self.instance, field):
                    self.add_error(field, f"{field} cannot change once the program has been activated.")
        _apply_errors(self, services.validate_program_values(values))
        return cleaned


class SeasonForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_season)


class ParticipationRuleForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_participation_rule)


class IncentiveRuleForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_incentive_rule)

    def clean(self):
        cleaned = super().clean()
        program = cleaned.get("program") or getattr(self.instance, "program", None)
        price_set = cleaned.get("price_set")
        if cleaned.get("basis") == "price_set" and not price_set:
            self.add_error("price_set", "price_set is required when basis is price_set.")
        if price_set and program and price_set.program_id != program.pk:
            self.add_error("price_set", "The price set belongs to another program.")
        season = cleaned.get("season")
        if season and program and season.program_id != program.pk:
            self.add_error("season", "The season belongs to another program.")
        return cleaned


class QuestionForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_question)


class SeasonFormSet(forms.BaseInlineFormSet):
    """Refuses overlapping seasons among the forms of one program (saved and new alike)."""

    def clean(self):
        super().clean()
        forms_by_season = {}
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            forms_by_season[id(form.cleaned_data)] = form
        for season, message in rules.season_overlaps([f.cleaned_data for f in forms_by_season.values()]):
            forms_by_season[id(season)].add_error("start_date", message)


class SeasonInline(admin.TabularInline):
    model = Season
    form = SeasonForm
    formset = SeasonFormSet
    extra = 0


class ParticipationRuleInline(admin.StackedInline):
    model = ParticipationRule
    form = ParticipationRuleForm
    extra = 0


class IncentiveRuleInline(admin.StackedInline):
    model = IncentiveRule
    form = IncentiveRuleForm
    extra = 0
    autocomplete_fields = ("season", "price_set")


class QuestionInline(admin.TabularInline):
    model = QualificationQuestion
    form = QuestionForm
    extra = 0


PAST = {"activate": "Activated", "suspend": "Suspended", "resume": "Resumed", "close": "Closed"}


def _status_action(service, verb: str):
    def run(modeladmin, request, queryset):
        done = 0
        for program in queryset.order_by("pk"):
            try:
                service(program=program, now=timezone.now(), actor=request.user, reason=f"admin {verb}")
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, exc.message, level=messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{PAST[verb]} {done} program(s).", level=messages.SUCCESS)

    run.__name__ = f"action_{verb}"
    run.short_description = f"{verb.capitalize()} selected programs"
    run.allowed_permissions = ("change",)
    return run


@admin.register(Program)
class ProgramAdmin(AuditHistoryAdmin):
    form = ProgramForm
    list_display = ("code", "name", "program_type", "status", "time_zone", "settlement_timing",
                    "enrollment_opens_on", "enrollment_closes_on", "updated_at")
    list_filter = ("status", "program_type", "settlement_timing", "performance_measurement", "holiday_calendar")
    search_fields = ("code", "name", "description")
    readonly_fields = ("status", "created_at", "updated_at")
    inlines = (SeasonInline, ParticipationRuleInline, IncentiveRuleInline, QuestionInline)
    actions = (
        _status_action(services.program_activate, "activate"),
        _status_action(services.program_suspend, "suspend"),
        _status_action(services.program_resume, "resume"),
        _status_action(services.program_close, "close"),
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == "closed":
            return [f.name for f in Program._meta.concrete_fields]
        return super().get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        """Writes go through the services (audited); the inlines are saved after, in the same transaction."""
        data = {k: v for k, v in form.cleaned_data.items() if k in services.PROGRAM_FIELDS}
        try:
            if change:
                saved = services.program_update(program=obj, data=data, now=timezone.now(), actor=request.user)
            else:
                saved = services.program_create(data=data, now=timezone.now(), actor=request.user)
        except DomainValidationError as exc:  # the form already ran the same checks; this is a race
            raise forms.ValidationError(exc.message) from exc
        obj.pk, obj.status = saved.pk, saved.status
        obj.refresh_from_db()


@admin.register(Season)
class SeasonAdmin(AuditHistoryAdmin):
    form = SeasonForm
    list_display = ("program", "name", "start_date", "end_date")
    list_filter = ("program__program_type",)
    search_fields = ("name", "program__code")
    list_select_related = ("program",)
    date_hierarchy = "start_date"


@admin.register(ParticipationRule)
class ParticipationRuleAdmin(AuditHistoryAdmin):
    form = ParticipationRuleForm
    list_display = ("program", "effective_from", "weekdays_allowed", "weekends_allowed", "holidays_allowed",
                    "window_start", "window_end", "max_duration_minutes", "max_events_per_season",
                    "opt_out_allowance_kind")
    list_filter = ("weekends_allowed", "holidays_allowed", "opt_out_allowance_kind")
    search_fields = ("program__code", "program__name")
    list_select_related = ("program",)


@admin.register(IncentiveRule)
class IncentiveRuleAdmin(AuditHistoryAdmin):
    form = IncentiveRuleForm
    list_display = ("program", "season", "kind", "basis", "amount", "price_set", "description")
    list_filter = ("kind", "basis")
    search_fields = ("program__code", "description")
    list_select_related = ("program", "season", "season__program", "price_set", "price_set__program")
    autocomplete_fields = ("season", "price_set")


@admin.register(QualificationQuestion)
class QualificationQuestionAdmin(AuditHistoryAdmin):
    form = QuestionForm
    list_display = ("program", "code", "position", "answer_type", "required", "text")
    list_filter = ("answer_type", "required")
    search_fields = ("program__code", "code", "text")
    list_select_related = ("program",)


class MutualExclusionForm(forms.ModelForm):
    class Meta:
        model = MutualExclusion
        fields = ("program_a", "program_b", "reason")

    def clean(self):
        cleaned = super().clean()
        a, b = cleaned.get("program_a"), cleaned.get("program_b")
        if a and b and a.pk == b.pk:
            self.add_error("program_b", "A program cannot exclude itself.")
        elif a and b and a.pk > b.pk:  # stored lower id first
            cleaned["program_a"], cleaned["program_b"] = b, a
            self.instance.program_a, self.instance.program_b = b, a
        return cleaned


@admin.register(MutualExclusion)
class MutualExclusionAdmin(AuditHistoryAdmin):
    form = MutualExclusionForm
    list_display = ("program_a", "program_b", "reason")
    search_fields = ("program_a__code", "program_b__code", "reason")
    list_select_related = ("program_a", "program_b")
    autocomplete_fields = ("program_a", "program_b")

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        saved = services.mutual_exclusion_create(program_a=obj.program_a, program_b=obj.program_b, reason=obj.reason,
                                                 now=timezone.now(), actor=request.user)
        obj.pk = saved.pk


@admin.register(IntervalPriceSet)
class IntervalPriceSetAdmin(AuditHistoryAdmin):
    """Price sets are created from rows through the API or ``price_set_create``; here they are read."""

    list_display = ("program", "name", "interval_minutes")
    search_fields = ("name", "program__code")
    list_select_related = ("program",)
    readonly_fields = ("program", "name", "interval_minutes")

    def has_add_permission(self, request):
        return False


@admin.register(IntervalPrice)
class IntervalPriceAdmin(admin.ModelAdmin):
    list_display = ("price_set", "interval_start", "price_per_kwh")
    list_filter = ("price_set__program",)
    search_fields = ("price_set__name", "price_set__program__code")
    list_select_related = ("price_set", "price_set__program")
    date_hierarchy = "interval_start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
