"""Admin of the programs app: an adapter over ``programs.services``.

Programs are edited with their seasons, participation rules, incentive rules and questions inline; the inline forms
run the same pure checks as the services (``programs.rules``) for early per-field messages, and every row is saved
through its service (``ProgramAdmin.save_formset``): a closed program refuses any change, every change is audited,
and a refusal rolls the whole page back with the service's message. Seasons, rules, incentives and questions have
their own pages, saved through the same services. Add, change, delete and the status actions (activate, suspend,
resume, close) are offered only to users holding ``Cap.MANAGE_PROGRAMS``. Price sets are created from rows through
the API; here they are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import path
from django.utils.text import capfirst

from cpm.base.admin import GuardedModelAdmin, ReadOnlyAdmin, admin_now, apply_errors, guarded_action
from cpm.base.admin_tools import ChangelistToolsMixin, Tool
from cpm.base.capabilities import may
from cpm.base.errors import DomainError

from . import rules, services
from .choices import CustomerClass, DeviceType, IncentiveBasis, IncentiveKind, OptOutConsequence
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


class RuleCheckedForm(forms.ModelForm):
    """A model form that also runs a pure validator of ``programs.rules`` on the cleaned values."""

    pure_validator = None
    #: Help shown under fields whose model gives none (units, what an empty value means).
    help_texts: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, text in self.help_texts.items():
            if name in self.fields:
                self.fields[name].help_text = text

    def clean(self):
        cleaned = super().clean()
        if self.pure_validator and not self.errors:
            values = {name: getattr(self.instance, name, None) for name in
                      (f.name for f in self._meta.model._meta.concrete_fields)}
            values.update(cleaned)
            values["price_set_id"] = None
            apply_errors(self, self.in_words(type(self).pure_validator(values), values))
        return cleaned

    def in_words(self, errors: dict[str, list[str]], values: dict) -> dict[str, list[str]]:
        """The validator's ``errors`` as a person reads them next to the form (field names are then replaced by
        their labels, ``apply_errors``)."""
        return errors


# Eligibility lists whose allowed values are fixed vocabularies (checkboxes listing every value).
FIXED_CODE_LISTS = {
    "eligible_device_types": (DeviceType.choices, "Tick the device types that may enroll."),
    "eligible_customer_classes": (CustomerClass.choices, "Tick the customer classes that may enroll; none ticked "
                                                         "= any class."),
}
# Eligibility lists whose allowed values are codes of the customer data (rate codes, network): the values known
# come from ``KNOWN_CODES`` (filled by the devices app, which owns service points and premises: programs imports no
# app to its right), plus the program's own values.
NETWORK_CODE_LISTS = {
    "eligible_rate_codes": "Tick the rate codes that may enroll; none ticked = any rate code.",
    "eligible_territories": "Tick the service territories (the utility's) where the program is offered; none ticked "
                            "= everywhere.",
    "eligible_substations": "Tick the substations where the program is offered; none ticked = any substation.",
    "eligible_feeders": "Tick the feeders where the program is offered; none ticked = any feeder.",
}
KNOWN_CODES: dict[str, Callable[[], Iterable[str]]] = {}


def register_known_codes(field: str, source: Callable[[], Iterable[str]]) -> None:
    """Let an app to the right (devices) say which codes exist for an eligibility list of ``NETWORK_CODE_LISTS``:
    ``source()`` returns them when a program form is shown."""
    if field not in NETWORK_CODE_LISTS:
        raise ValueError(f"{field} is not an eligibility list of codes")
    KNOWN_CODES[field] = source


# The zones a utility in North America names first, then every other IANA zone (a select, never typed text).
COMMON_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
                "America/Anchorage", "Pacific/Honolulu", "America/Toronto", "America/Halifax", "America/Puerto_Rico")


@cache
def time_zone_choices() -> list:
    """Grouped choices of IANA zones for the program's time zone: the common North American ones first."""
    others = sorted(z for z in available_timezones() if "/" in z and z not in COMMON_ZONES
                    and not z.startswith(("Etc/", "SystemV/", "US/")))
    return [("", "---------"), ("Common", [(z, z) for z in COMMON_ZONES]), ("All zones", [(z, z) for z in others])]


def code_list_field(choices, help_text: str, *, widget) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=choices, required=False, help_text=help_text, widget=widget,
        error_messages={"invalid_choice": "%(value)s is not one of the values listed here.",
                        "invalid_list": "Tick values from the list."})


class ProgramForm(forms.ModelForm):
    """The program set-up form: eligibility lists as ticked values (never JSON), the rest in sections
    (``ProgramAdmin.fieldsets``); refusals in words."""

    class Meta:
        model = Program
        fields = list(services.PROGRAM_FIELDS)
        error_messages = {
            "baseline_params": {"invalid": "Write the baseline overrides as JSON, e.g. {\"x\": 10, \"y\": 10}, or "
                                           "{} for the method's preset."},
            "code": {"unique": "Another program already has this code; choose another.",
                     "invalid": "Use only letters, digits, hyphens and underscores in the code."},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "time_zone" in self.fields and not self.fields["time_zone"].disabled:
            field = self.fields["time_zone"]
            choices = time_zone_choices()
            current = getattr(self.instance, "time_zone", "")
            if current and current not in {v for _, group in choices[1:] for v, _ in group}:
                choices = [*choices, ("Current", [(current, current)])]
            self.fields["time_zone"] = forms.ChoiceField(
                choices=choices, label=field.label, help_text="The IANA zone in which people of the program read and "
                "type times (event windows, local days, seasons, baselines).",
                error_messages={"invalid_choice": "%(value)s is not a time zone listed here."})
        for name in ("event_priority", "reported_min_completeness_pct"):  # left empty: the default (0)
            if name in self.fields:
                self.fields[name].required = False
        for name, (choices, help_text) in FIXED_CODE_LISTS.items():
            if name in self.fields:
                self.fields[name] = code_list_field(choices, help_text, widget=forms.CheckboxSelectMultiple)
        for name, help_text in NETWORK_CODE_LISTS.items():
            if name not in self.fields:
                continue
            known = set(KNOWN_CODES[name]()) if name in KNOWN_CODES else set()
            known.update(getattr(self.instance, name, None) or [])
            choices = [(code, code) for code in sorted(c for c in known if c)]
            if not choices:
                help_text += " (No code is known yet: none found on service points.)"
            self.fields[name] = code_list_field(choices, help_text, widget=forms.CheckboxSelectMultiple)
            self.fields[name].initial = getattr(self.instance, name, None) or []

    def clean(self):
        cleaned = super().clean()
        for name in ("event_priority", "reported_min_completeness_pct"):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = 0
        values = {k: v for k, v in cleaned.items() if k in services.PROGRAM_FIELDS}
        if self.instance.pk and self.instance.status != "draft":
            for field in services.FROZEN_AFTER_DRAFT:
                if field in values and values[field] != getattr(self.instance, field):
                    label = self.fields[field].label if field in self.fields else field
                    self.add_error(field, f"{label} cannot change once the program has been activated.")
        apply_errors(self, services.validate_program_values(values))
        return cleaned


class SeasonForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_season)


NO_LIMIT = "empty = no limit."


class ParticipationRuleForm(RuleCheckedForm):
    pure_validator = staticmethod(rules.validate_participation_rule)
    help_texts = {
        "effective_from": "Local date from which the rule applies; on each day the latest rule in effect applies "
                          "(add a new rule to change limits later).",
        "min_duration_minutes": f"Shortest event, minutes; {NO_LIMIT}",
        "max_duration_minutes": f"Longest event, minutes; {NO_LIMIT}",
        "max_events_per_day": f"Events a device may be called in one local day; {NO_LIMIT}",
        "max_events_per_week": f"Events a device may be called in one week (Monday to Sunday); {NO_LIMIT}",
        "max_events_per_season": f"Events a device may be called in one season; {NO_LIMIT}",
        "max_event_hours_per_day": f"Event hours a device may be called in one local day (e.g. 4 or 2.5); "
                                   f"{NO_LIMIT}",
        "max_event_hours_per_season": f"Event hours a device may be called in one season; {NO_LIMIT}",
        "min_rest_minutes": f"Minutes between the end of one event and the start of the next for a device; "
                            f"{NO_LIMIT.replace('limit', 'rest required')}",
        "max_consecutive_event_days": f"Local days in a row with an event for a device; {NO_LIMIT}",
        "min_notice_minutes": "Least notice, in minutes between the notification and the start of an event "
                              "(e.g. 1440 = a day ahead); empty = any notice.",
        "opt_out_allowance_count": "With the allowance kind 'A number of opt-outs per season': opt-outs per season.",
    }


def _quoted(choices, value) -> str:
    return f"“{dict(choices).get(value, value)}”"


class IncentiveRuleForm(RuleCheckedForm):
    """An incentive rule; refusals name the kind, the basis and the consequence as the drop-downs show them (the
    validator gives their codes: "Basis 'per_kwh_enrolled' does not fit a per_event incentive (allowed: flat,
    per_device)")."""

    pure_validator = staticmethod(rules.validate_incentive_rule)
    help_texts = {
        "season": "The season it pays in; empty = every season.",
        "price_set": "With the basis “Interval price set ($/kWh per interval)”: the prices it pays (load them with "
                     "“Load an interval price set” on the interval price sets' list).",
        "top_percent_events": "Performance per kW drop: average the kW drops of the season's events with the "
                              "largest drops only, this percent of them (e.g. 50 = the best half); empty = all "
                              "events.",
        "opt_out_consequence": "For an opt-out penalty: what an opt-out costs (a $ amount per opt-out, or the "
                               "payment forfeited).",
        "description": "How the incentive reads to people (statements, the CSR page).",
    }

    def in_words(self, errors, values):
        kind, basis = values.get("kind"), values.get("basis") or IncentiveBasis.FLAT
        consequence = values.get("opt_out_consequence")
        kind_text = _quoted(IncentiveKind.choices, kind)
        words = {}
        for field, messages_ in errors.items():
            out = []
            for message in messages_:
                if field == "basis" and message.startswith("Basis ") and kind in rules.INCENTIVE_BASES:
                    allowed = [_quoted(IncentiveBasis.choices, b) for b in IncentiveBasis.values
                               if b in rules.INCENTIVE_BASES[kind]]
                    message = (f"The basis {_quoted(IncentiveBasis.choices, basis)} does not fit a {kind_text} "
                               f"incentive; choose {', '.join(allowed[:-1]) + ' or ' if len(allowed) > 1 else ''}"
                               f"{allowed[-1]}.")
                elif field == "price_set" and "required" in message:
                    message = (f"Choose a price set: the basis {_quoted(IncentiveBasis.choices, 'price_set')} pays "
                               "each interval at its price.")
                elif field == "price_set":
                    message = (f"A price set is only used with the basis "
                               f"{_quoted(IncentiveBasis.choices, 'price_set')}: clear it or change the basis.")
                elif field == "amount" and message.startswith("A ") and "forfeiture has no amount" in message:
                    message = (f"The opt-out consequence {_quoted(OptOutConsequence.choices, consequence)} has no "
                               "amount; set amount to 0.")
                elif field == "amount" and kind:
                    message = message.replace(f"a {kind} incentive", f"a {kind_text} incentive")
                if message.startswith("amount "):
                    message = "Amount " + message[len("amount "):]
                out.append(message.replace("set amount to", "set Amount to"))
            words[field] = out
        return words

    def clean(self):
        cleaned = super().clean()
        program = cleaned.get("program") or getattr(self.instance, "program", None)
        price_set = cleaned.get("price_set")
        if price_set and program and price_set.program_id != program.pk:
            self.add_error("price_set", "The price set belongs to another program.")
        season = cleaned.get("season")
        if season and program and season.program_id != program.pk:
            self.add_error("season", "The season belongs to another program.")
        return cleaned


def _number(value):
    """A Decimal bound as JSON: an int when whole, else a float (``rules.check_answers`` reads it back exactly)."""
    return int(value) if value == value.to_integral_value() else float(value)


class QuestionForm(RuleCheckedForm):
    """A qualification question without JSON: the choices one per line, the qualifying answers ticked from the
    allowed values (yes / no, or the question's choices), a number question's qualifying range as a minimum and a
    maximum; stored as ``choices`` (list) and ``qualifying_answers`` (list, or ``{"min", "max"}``) as the services
    and ``programs.rules.check_answers`` take them. Refusals in words, naming the field."""

    pure_validator = staticmethod(rules.validate_question)
    YES_NO = (("yes", "Yes"), ("no", "No"))

    choices = forms.CharField(
        required=False, label="Choices", widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Choice questions only: one allowed answer per line.")
    qualifying_answers = forms.MultipleChoiceField(
        required=False, label="Qualifying answers", widget=forms.CheckboxSelectMultiple,
        help_text="Tick the answers that qualify: yes / no for a yes / no question, the choices for a choice "
                  "question (save the choices first to see them here); none ticked = any answer qualifies.",
        error_messages={"invalid_choice": "%(value)s is not one of the answers listed here."})
    qualifying_min = forms.DecimalField(required=False, label="Qualifying minimum",
                                        help_text="Number questions: the lowest answer that qualifies; empty = none.")
    qualifying_max = forms.DecimalField(required=False, label="Qualifying maximum",
                                        help_text="Number questions: the highest answer that qualifies; empty = none.")

    class Meta:
        model = QualificationQuestion
        fields = ("program", *services.QUESTION_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        choices = list(instance.choices or []) if isinstance(instance.choices, list) else []
        qualifying = instance.qualifying_answers
        if not self.is_bound:
            self.initial["choices"] = "\n".join(map(str, choices))
            if isinstance(qualifying, dict):
                self.initial.setdefault("qualifying_min", qualifying.get("min"))
                self.initial.setdefault("qualifying_max", qualifying.get("max"))
                self.initial["qualifying_answers"] = []
            else:
                self.initial["qualifying_answers"] = [self._key(v) for v in qualifying or []]
        offered = [self._key(c) for c in choices]
        if self.is_bound:  # the choices typed in this very form may be ticked too
            offered += self._lines(self.data.get(self.add_prefix("choices"), ""))
        if isinstance(qualifying, list):
            offered += [self._key(v) for v in qualifying]
        values = dict(self.YES_NO)
        for value in offered:
            values.setdefault(value, value)
        self.fields["qualifying_answers"].choices = list(values.items())

    @staticmethod
    def _key(value) -> str:
        return "yes" if value is True else "no" if value is False else str(value)

    @staticmethod
    def _lines(text: str) -> list[str]:
        return [line.strip() for line in str(text or "").splitlines() if line.strip()]

    @property
    def changed_data(self):
        """A changed range bound changes ``qualifying_answers`` (what the services store)."""
        changed = list(super().changed_data)
        if {"qualifying_min", "qualifying_max"} & set(changed) and "qualifying_answers" not in changed:
            changed.append("qualifying_answers")
        return changed

    def clean_choices(self):
        return self._lines(self.cleaned_data.get("choices"))

    def clean(self):
        data = self.cleaned_data
        answer_type = data.get("answer_type")
        ticked = data.get("qualifying_answers") or []
        low, high = data.get("qualifying_min"), data.get("qualifying_max")
        if answer_type == "number":
            if ticked:
                self.add_error("qualifying_answers", "A number question qualifies by a range: give a minimum and "
                                                     "a maximum instead of ticking answers.")
            if low is not None and high is not None and low > high:
                self.add_error("qualifying_max", "The maximum must be at least the minimum.")
            bounds = {k: _number(v) for k, v in (("min", low), ("max", high)) if v is not None}
            data["qualifying_answers"] = bounds or []
        else:
            for name, value in (("qualifying_min", low), ("qualifying_max", high)):
                if value is not None:
                    self.add_error(name, "Only a number question has a qualifying range.")
            if answer_type == "boolean":
                wrong = [v for v in ticked if v not in ("yes", "no")]
                if wrong:
                    self.add_error("qualifying_answers", f"A yes / no question qualifies by yes or no, not "
                                                         f"{', '.join(wrong)}.")
                data["qualifying_answers"] = [v == "yes" for v in ticked if v in ("yes", "no")]
            else:
                data["qualifying_answers"] = list(ticked)
        return super().clean()


class ItemFormSet(forms.BaseInlineFormSet):
    """The items of one program (seasons, participation rules, questions): two with the same key (a rule's
    Effective from, a season's Name, a question's Code: the model's unique constraints with the program) are refused
    on the later item's field, naming it as the form labels it and its value. Django's own text named the column
    above the items with no field marked ("Please correct the duplicate data for effective_from.")."""

    def _unique_fields(self) -> list[str]:
        fields = []
        for constraint in self.model._meta.constraints:
            names = list(getattr(constraint, "fields", ()) or ())
            if isinstance(constraint, models.UniqueConstraint) and constraint.condition is None \
                    and self.fk.name in names and len(names) == 2:
                fields.append(next(n for n in names if n != self.fk.name))
        return fields

    def validate_unique(self):
        deleted = set(map(id, self.deleted_forms)) if self.can_delete else set()
        for name in self._unique_fields():
            seen: set = set()
            for form in self.forms:
                if id(form) in deleted or not form.is_valid() or name not in form.fields:
                    continue
                value = form.cleaned_data.get(name)
                if value in (None, ""):
                    continue
                if value in seen:
                    label = form.fields[name].label or capfirst(self.model._meta.get_field(name).verbose_name)
                    shown = value.isoformat() if hasattr(value, "isoformat") else value
                    form.add_error(name, f"{label} {shown} is already given to another "
                                         f"{self.model._meta.verbose_name} of this program; each needs its own.")
                else:
                    seen.add(value)
        super().validate_unique()


class SeasonFormSet(ItemFormSet):
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


@dataclass(frozen=True)
class ItemWrites:
    """The services of one kind of program item, and the fields they take."""

    entity: str  # use-case namespace: season, participation_rule, incentive_rule, question
    kwarg: str  # the instance keyword of update/delete
    fields: tuple[str, ...]
    create: Callable
    update: Callable
    delete: Callable


ITEM_WRITES = {
    Season: ItemWrites("season", "season", services.SEASON_FIELDS, services.season_create, services.season_update,
                       services.season_delete),
    ParticipationRule: ItemWrites("participation_rule", "rule", services.RULE_FIELDS,
                                  services.participation_rule_create, services.participation_rule_update,
                                  services.participation_rule_delete),
    IncentiveRule: ItemWrites("incentive_rule", "incentive", services.INCENTIVE_FIELDS, services.incentive_rule_create,
                              services.incentive_rule_update, services.incentive_rule_delete),
    QualificationQuestion: ItemWrites("question", "question", services.QUESTION_FIELDS, services.question_create,
                                      services.question_update, services.question_delete),
}


def item_data(form: forms.ModelForm, fields, *, changed_only: bool) -> dict:
    """The service's ``data`` from a validated item form: its fields (only the changed ones for an update)."""
    names = form.changed_data if changed_only else form.cleaned_data
    return {name: form.cleaned_data[name] for name in fields if name in names and name in form.cleaned_data}


class ItemInlineMixin:
    """An inline of program items: offered as the item's use cases allow; saved by ``ProgramAdmin.save_formset``."""

    extra = 0
    formset = ItemFormSet

    def _may(self, request, verb: str) -> bool:
        return may(request.user, f"{ITEM_WRITES[self.model].entity}.{verb}")

    def has_add_permission(self, request, obj=None):
        return self._may(request, "create")

    def has_change_permission(self, request, obj=None):
        return self._may(request, "update")

    def has_delete_permission(self, request, obj=None):
        return self._may(request, "delete")

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self._may(request, "update")


class SeasonInline(ItemInlineMixin, admin.TabularInline):
    model = Season
    form = SeasonForm
    formset = SeasonFormSet


class ParticipationRuleInline(ItemInlineMixin, admin.StackedInline):
    model = ParticipationRule
    classes = ("collapse",)
    form = ParticipationRuleForm


class IncentiveRuleInline(ItemInlineMixin, admin.StackedInline):
    model = IncentiveRule
    classes = ("collapse",)
    form = IncentiveRuleForm
    autocomplete_fields = ("season", "price_set")


class QuestionInline(ItemInlineMixin, admin.StackedInline):
    model = QualificationQuestion
    classes = ("collapse",)
    form = QuestionForm


PAST = {"activate": "Activated", "suspend": "Suspended", "resume": "Resumed", "close": "Closed"}


def _status_action(service, verb: str):
    @guarded_action(f"program.{verb}", description=f"{verb.capitalize()} selected programs")
    def run(modeladmin, request, queryset):
        done = 0
        for program in queryset.order_by("pk"):
            try:
                service(program=program, now=admin_now(), actor=request.user, reason=f"admin {verb}")
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, exc.message, level=messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{PAST[verb]} {done} program(s).", level=messages.SUCCESS)

    run.__name__ = f"action_{verb}"
    return run


@admin.register(Program)
class ProgramAdmin(GuardedModelAdmin):
    form = ProgramForm
    write_use_cases = {"add": "program.create", "change": "program.update", "delete": "program.delete"}
    list_display = ("code", "name", "program_type", "status", "time_zone", "settlement_timing",
                    "enrollment_opens_on", "enrollment_closes_on", "updated_at")
    list_filter = ("status", "program_type", "settlement_timing", "performance_measurement", "holiday_calendar")
    search_fields = ("code", "name", "description")
    readonly_fields = ("status", "created_at", "updated_at")
    # Sections instead of one long form; the rarely changed ones start folded (<details>, no script).
    fieldsets = (
        ("Program", {"fields": ("code", "name", "description", "program_type", "time_zone", "status"),
                     "description": "What is offered; code, type and time zone are fixed once the program has "
                                    "been activated."}),
        ("Enrollment", {"fields": ("enrollment_opens_on", "enrollment_closes_on", "requires_approval",
                                   "auto_activate", "requires_device", "device_ownership", "allows_co_enrollment"),
                        "description": "When and how customers enroll. Dates are local dates in the program's "
                                       "time zone."}),
        ("Who may enroll", {"fields": ("excludes_life_support", "eligible_device_types", "eligible_customer_classes",
                                       "eligible_rate_codes"),
                            "description": "Customers with life-support equipment on file are excluded unless you "
                                           "untick the first box."}),
        ("Where it is offered", {"fields": ("eligible_territories", "eligible_substations", "eligible_feeders"),
                                 "classes": ("collapse",),
                                 "description": "Leave a list unticked to offer the program everywhere."}),
        ("Events", {"fields": ("event_priority", "declines_events_without_incentive",
                               "device_online_threshold_minutes", "holiday_calendar")}),
        ("Settlement", {"fields": ("settlement_timing", "performance_measurement", "baseline_method",
                                   "baseline_params", "charges_negative_performance",
                                   "reported_min_completeness_pct"),
                        "classes": ("collapse",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )
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

    def save_via_service(self, request, obj, form, change):
        """The program through ``program_create`` / ``program_update`` (audited); its inlines follow in
        ``save_formset``, in the same transaction."""
        data = {k: v for k, v in form.cleaned_data.items() if k in services.PROGRAM_FIELDS}
        if change:
            changed = {k: v for k, v in data.items() if k in form.changed_data}
            if not changed:  # only inline rows changed: their services check the program
                return
            saved = services.program_update(program=obj, data=changed, now=admin_now(), actor=request.user)
        else:
            saved = services.program_create(data=data, now=admin_now(), actor=request.user)
        obj.pk, obj.status = saved.pk, saved.status
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        """Each inline row through its service: deleted rows ``*_delete``, changed rows ``*_update`` (changed
        fields only), new rows ``*_create``. A refusal (a closed program, a rule already in effect) raises and the
        whole page rolls back with the service's message (``GuardedModelAdmin.changeform_view``)."""
        spec = ITEM_WRITES[formset.model]
        program, now, actor = form.instance, admin_now(), request.user
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for item_form in formset.initial_forms:
            obj = item_form.instance
            if formset.can_delete and formset._should_delete_form(item_form):
                spec.delete(**{spec.kwarg: type(obj).objects.get(pk=obj.pk)}, now=now, actor=actor)
                formset.deleted_objects.append(obj)
            elif item_form.has_changed():
                data = item_data(item_form, spec.fields, changed_only=True)
                if data:
                    saved = spec.update(**{spec.kwarg: obj}, data=data, now=now, actor=actor)
                    formset.changed_objects.append((saved, list(data)))
        for item_form in formset.extra_forms:
            if not item_form.has_changed() or (formset.can_delete and formset._should_delete_form(item_form)):
                continue
            saved = spec.create(program=program, data=item_data(item_form, spec.fields, changed_only=False),
                                now=now, actor=actor)
            item_form.instance = saved
            formset.new_objects.append(saved)

    def delete_via_service(self, request, obj):
        services.program_delete(program=obj, now=admin_now(), actor=request.user)


def item_use_cases(entity: str) -> dict[str, str]:
    return {"add": f"{entity}.create", "change": f"{entity}.update", "delete": f"{entity}.delete"}


class ItemAdmin(GuardedModelAdmin):
    """A program item's own page (season, rule, incentive, question), saved through its services; the program is
    chosen when the item is added and cannot change after."""

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "program") if obj is not None else readonly

    def save_via_service(self, request, obj, form, change):
        spec = ITEM_WRITES[self.model]
        if change:
            saved = spec.update(**{spec.kwarg: obj}, data=item_data(form, spec.fields, changed_only=True),
                                now=admin_now(), actor=request.user)
        else:
            saved = spec.create(program=form.cleaned_data["program"],
                                data=item_data(form, spec.fields, changed_only=False), now=admin_now(),
                                actor=request.user)
        obj.pk = saved.pk

    def delete_via_service(self, request, obj):
        spec = ITEM_WRITES[self.model]
        spec.delete(**{spec.kwarg: obj}, now=admin_now(), actor=request.user)


@admin.register(Season)
class SeasonAdmin(ItemAdmin):
    form = SeasonForm
    write_use_cases = item_use_cases("season")
    list_display = ("program", "name", "start_date", "end_date")
    list_filter = ("program__program_type",)
    search_fields = ("name", "program__code")
    list_select_related = ("program",)
    date_hierarchy = "start_date"


@admin.register(ParticipationRule)
class ParticipationRuleAdmin(ItemAdmin):
    form = ParticipationRuleForm
    write_use_cases = item_use_cases("participation_rule")
    list_display = ("program", "effective_from", "weekdays_allowed", "weekends_allowed", "holidays_allowed",
                    "window_start", "window_end", "max_duration_minutes", "max_events_per_season",
                    "opt_out_allowance_kind")
    list_filter = ("weekends_allowed", "holidays_allowed", "opt_out_allowance_kind")
    search_fields = ("program__code", "program__name")
    list_select_related = ("program",)


@admin.register(IncentiveRule)
class IncentiveRuleAdmin(ItemAdmin):
    form = IncentiveRuleForm
    write_use_cases = item_use_cases("incentive_rule")
    list_display = ("program", "season", "kind", "basis", "amount", "price_set", "description")
    list_filter = ("kind", "basis")
    search_fields = ("program__code", "description")
    list_select_related = ("program", "season", "season__program", "price_set", "price_set__program")
    autocomplete_fields = ("season", "price_set")


@admin.register(QualificationQuestion)
class QualificationQuestionAdmin(ItemAdmin):
    form = QuestionForm
    write_use_cases = item_use_cases("question")
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
class MutualExclusionAdmin(GuardedModelAdmin):
    """Pairs are declared and withdrawn (``mutual_exclusion_create`` / ``_delete``), never edited."""

    form = MutualExclusionForm
    write_use_cases = {"add": "mutual_exclusion.create", "delete": "mutual_exclusion.delete"}
    list_display = ("program_a", "program_b", "reason")
    search_fields = ("program_a__code", "program_b__code", "reason")
    list_select_related = ("program_a", "program_b")
    autocomplete_fields = ("program_a", "program_b")

    def save_via_service(self, request, obj, form, change):
        saved = services.mutual_exclusion_create(program_a=obj.program_a, program_b=obj.program_b, reason=obj.reason,
                                                 now=admin_now(), actor=request.user)
        obj.pk = saved.pk

    def delete_via_service(self, request, obj):
        services.mutual_exclusion_delete(exclusion=obj, now=admin_now(), actor=request.user)


@admin.register(IntervalPriceSet)
class IntervalPriceSetAdmin(ChangelistToolsMixin, ReadOnlyAdmin):
    """Price sets are created from a CSV of rows on the upload page (``admin_prices``, ``price_set_create``) or
    through the API; here they are read, never edited (a changed price would change settled credits)."""

    list_display = ("program", "name", "interval_minutes")
    search_fields = ("name", "program__code")
    list_select_related = ("program",)
    changelist_tools = (Tool("Load an interval price set", "programs_intervalpriceset_upload", "price_set.create"),)

    def get_urls(self):
        from .admin_prices import upload_view

        return [path("upload/", self.admin_site.admin_view(lambda request: upload_view(self, request)),
                     name="programs_intervalpriceset_upload"), *super().get_urls()]


@admin.register(IntervalPrice)
class IntervalPriceAdmin(ReadOnlyAdmin):
    list_display = ("price_set", "interval_start", "price_per_kwh")
    list_filter = ("price_set__program",)
    search_fields = ("price_set__name", "price_set__program__code")
    list_select_related = ("price_set", "price_set__program")
    date_hierarchy = "interval_start"
