"""Write path of the programs app: programs, seasons, participation rules, incentive rules, qualification questions,
mutual exclusions, interval price sets, and program status changes.

Every service is keyword-only, takes ``now`` (aware UTC) and ``actor`` (a user or a named system actor; required:
``None`` is refused), is a registered use case needing ``Cap.MANAGE_PROGRAMS`` (``cpm.base.capabilities``), is
audited, runs in its own transaction, locks the program row before changing anything that belongs to it (so two
admins cannot create overlapping seasons at once), and raises ``DomainValidationError`` (400, per field),
``ConflictError`` / ``TransitionNotAllowed`` (409) or ``NotFound`` (404).

Editing rules once a program has been activated: a CLOSED program is read-only; seasons that have started and
participation rules already in effect (local date in the program's zone) cannot be changed or deleted, because events
and settlements were decided under them: add a new rule effective from a later date instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from cpm.base.audit import audit_code, audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError, NotFound, TransitionNotAllowed
from cpm.base.numbers import to_decimal
from cpm.base.states import transition
from cpm.base.timeutils import is_valid_zone, local_date, zone

from . import rules
from .baseline_params import baseline_params_errors
from .choices import (
    PROGRAM_TRANSITIONS,
    BaselineMethod,
    CustomerClass,
    DeviceOwnership,
    DeviceType,
    HolidayCalendar,
    ProgramStatus,
    ProgramType,
)
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
from .signals import incentive_rule_changing, mutual_exclusion_creating, program_changed, program_closed

logger = logging.getLogger(__name__)

PROGRAM_FIELDS = (
    "code", "name", "description", "program_type", "time_zone", "enrollment_opens_on", "enrollment_closes_on",
    "eligible_device_types", "eligible_customer_classes", "eligible_rate_codes", "eligible_territories",
    "eligible_substations", "eligible_feeders", "excludes_life_support", "device_ownership", "requires_device",
    "requires_approval", "auto_activate", "allows_co_enrollment", "settlement_timing", "performance_measurement",
    "baseline_method", "baseline_params", "holiday_calendar", "device_online_threshold_minutes",
    "charges_negative_performance", "event_priority", "declines_events_without_incentive",
    "counts_reduction_below_zero_net_load", "reported_min_completeness_pct",
)
# Fields that change the meaning of stored data once the program has been active.
FROZEN_AFTER_DRAFT = ("code", "time_zone", "program_type")
SEASON_FIELDS = ("name", "start_date", "end_date")
RULE_FIELDS = (
    "effective_from", "weekdays_allowed", "weekends_allowed", "holidays_allowed", "window_start", "window_end",
    "min_duration_minutes", "max_duration_minutes", "max_events_per_day", "max_events_per_week",
    "max_events_per_season", "max_event_hours_per_day", "max_event_hours_per_season", "min_rest_minutes",
    "max_consecutive_event_days", "min_notice_minutes", "opt_out_allowance_kind", "opt_out_allowance_count",
    "opt_out_allowance_percent", "opt_out_cutoff_minutes", "refuse_opt_out_beyond_allowance",
)
INCENTIVE_FIELDS = (
    "season", "kind", "basis", "amount", "price_set", "top_percent_events", "opted_out_counts_zero",
    "min_participation_share", "max_opt_outs", "season_enrollment", "requires_no_skipped_event",
    "opt_out_consequence", "description",
)
QUESTION_FIELDS = ("code", "position", "text", "answer_type", "required", "choices", "qualifying_answers")


# --- helpers -----------------------------------------------------------------------------------------------------

def _unknown_fields(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise DomainValidationError({name: ["Unknown field."] for name in unknown})


def _prefixed(errors: Mapping[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}.{key}" if prefix else key: value for key, value in errors.items()}


def _full_clean(obj, *, exclude: Iterable[str] = (), path: str = "", pure=None) -> None:
    """Validate ``obj``: field types first, then the pure per-field checks ``pure(obj)``, then the database
    constraints; any error is raised as a per-field ``DomainValidationError`` with keys prefixed by ``path``."""
    def run(check):
        try:
            check()
        except DjangoValidationError as exc:
            raise DomainValidationError(_prefixed({k: [str(m) for m in v] for k, v in exc.message_dict.items()},
                                                  path)) from exc

    run(lambda: obj.full_clean(exclude=list(exclude), validate_constraints=False))
    if pure is not None:
        errors = pure(obj)
        if errors:
            raise DomainValidationError(_prefixed(errors, path))
    run(lambda: obj.validate_constraints(exclude=list(exclude)))


def _lock_program(program: Program | int) -> Program:
    pk = program.pk if isinstance(program, Program) else program
    try:
        return Program.objects.select_for_update().get(pk=pk)
    except Program.DoesNotExist as exc:
        raise NotFound(f"Program {pk} does not exist.") from exc



def _audit_value(value: Any) -> Any:
    """A value as the audit trail stores it (JSON): a related object by its id, dates and amounts as text."""
    value = getattr(value, "pk", value)
    return value if isinstance(value, list | dict | bool | int) or value is None else str(value)


def _before(obj, data: Mapping[str, Any]) -> dict[str, Any]:
    """The stored values of the fields ``data`` writes (for ``_audit_item``'s before and after)."""
    return {key: getattr(obj, key) for key in data if hasattr(obj, key)}


def _audit_item(obj, *, action: str, now: dt.datetime, actor: Any, data: Mapping[str, Any] | None = None,
                before: Mapping[str, Any] | None = None) -> None:
    """Audit a change of a program's item (season, rule, incentive, question): ``<entity>.created/updated/deleted``
    with the program's code and the values written; for an update (``before`` given) only the fields that changed,
    each as ``[before, after]``."""
    changes = {"program": obj.program.code if obj.program_id else None}
    for key, value in (data or {}).items():
        if before is None:
            changes[key] = _audit_value(value)
        elif before.get(key) != value:
            changes[key] = [_audit_value(before.get(key)), _audit_value(value)]
    # A deletion is recorded as an update coded ``<entity>.deleted`` (AuditEntry.Action has no "delete").
    audit_record(obj=obj, action="update" if action == "delete" else action, now=now, actor=actor, changes=changes,
                 code=audit_code(obj, action))


def program_local_today(program: Program, now: dt.datetime) -> dt.date:
    """The local date of ``now`` in the program's zone."""
    return local_date(now, zone(program.time_zone))


def _require_editable(program: Program) -> None:
    if program.status == ProgramStatus.CLOSED:
        raise ConflictError(f"Program {program.code} is closed; its definition can no longer change.",
                            code="program_closed")


def _list_of_choices(errors, field: str, value: Any, allowed: Sequence[str], label: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.setdefault(field, []).append(f"{field} must be a list of {label} codes.")
        return
    bad = [v for v in value if v not in allowed]
    if bad:
        errors.setdefault(field, []).append(
            f"Unknown {label} {', '.join(map(repr, bad))} (allowed: {', '.join(allowed)}).")


def validate_program_values(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per-field checks of program values beyond field types (zone, code lists, ownership, device requirement, the
    baseline overrides against the baseline method: ``baseline_params_errors``, one message per key)."""
    errors: dict[str, list[str]] = {}
    tz = values.get("time_zone")
    if tz is not None and not is_valid_zone(tz):
        errors["time_zone"] = [f"{tz!r} is not an IANA time zone (e.g. America/Los_Angeles)."]
    if values.get("device_ownership", DeviceOwnership.CUSTOMER_OWNED) != DeviceOwnership.CUSTOMER_OWNED:
        errors["device_ownership"] = [
            "Programs for utility-owned devices are out of scope: cpm manages customer-owned (bring your own "
            "device) programs only."]
    if "eligible_device_types" in values:
        _list_of_choices(errors, "eligible_device_types", values["eligible_device_types"], DeviceType.values,
                         "device type")
    if "eligible_customer_classes" in values:
        _list_of_choices(errors, "eligible_customer_classes", values["eligible_customer_classes"],
                         CustomerClass.values, "customer class")
    for field in ("eligible_rate_codes", "eligible_territories", "eligible_substations", "eligible_feeders"):
        value = values.get(field)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            errors[field] = [f"{field} must be a list of non-empty codes."]
    if values.get("requires_device", True) and "eligible_device_types" in values \
            and not values.get("eligible_device_types"):
        errors.setdefault("eligible_device_types", []).append(
            "A program that requires a device needs at least one eligible device type.")
    if values.get("program_type") == ProgramType.PEAK_TIME_REBATE and values.get("requires_device"):
        errors.setdefault("requires_device", []).append("A peak-time rebate program has no device: set it false.")
    opens, closes = values.get("enrollment_opens_on"), values.get("enrollment_closes_on")
    if opens and closes and closes < opens:
        errors["enrollment_closes_on"] = [f"enrollment_closes_on ({closes}) must be on or after "
                                          f"enrollment_opens_on ({opens})."]
    if values.get("baseline_params") is not None and not isinstance(values["baseline_params"], dict):
        errors["baseline_params"] = ["baseline_params must be an object."]
    elif values.get("baseline_params"):
        problems = baseline_params_errors(values.get("baseline_method") or BaselineMethod.CAISO_AUTO,
                                          values["baseline_params"])
        if problems:
            errors["baseline_params"] = problems
    if values.get("holiday_calendar") is not None and values["holiday_calendar"] not in HolidayCalendar.values:
        errors["holiday_calendar"] = [f"Unknown holiday calendar {values['holiday_calendar']!r}."]
    pct = values.get("reported_min_completeness_pct")
    if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100):
        errors["reported_min_completeness_pct"] = [
            f"reported_min_completeness_pct is a whole percent from 0 to 100, not {pct!r}."]
    return errors


# --- programs ------------------------------------------------------------------------------------------------------

@use_case("program.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def program_create(
    *,
    data: Mapping[str, Any],
    seasons: Sequence[Mapping[str, Any]] = (),
    participation_rules: Sequence[Mapping[str, Any]] = (),
    incentive_rules: Sequence[Mapping[str, Any]] = (),
    questions: Sequence[Mapping[str, Any]] = (),
    now: dt.datetime,
    actor: Any,
) -> Program:
    """Create a DRAFT program with its seasons, participation rules, incentive rules and questions, atomically.

    ``data``: program fields (``PROGRAM_FIELDS``). Nested items are field mappings; an incentive rule may name its
    season with ``season_name`` (a season created here). Errors of nested items are keyed by path, e.g.
    ``seasons[1].end_date``. Raises ``DomainValidationError``; nothing is written when anything is refused.
    """
    _unknown_fields(data, PROGRAM_FIELDS)
    values = {"device_ownership": DeviceOwnership.CUSTOMER_OWNED, **data}
    errors = validate_program_values(values)
    if errors:
        raise DomainValidationError(errors)
    program = Program(**values)
    _full_clean(program)
    program.save()
    created_seasons: dict[str, Season] = {}
    for i, item in enumerate(seasons):
        season = _season_write(program=program, season=None, data=item, path=f"seasons[{i}]")
        created_seasons[season.name] = season
    for i, item in enumerate(participation_rules):
        _rule_write(program=program, rule=None, data=item, path=f"participation_rules[{i}]")
    for i, item in enumerate(incentive_rules):
        item = dict(item)
        if "season_name" in item:
            name = item.pop("season_name")
            if name and name not in created_seasons:
                raise DomainValidationError({f"incentive_rules[{i}].season_name": [f"No season named {name!r}."]})
            item["season"] = created_seasons.get(name) if name else None
        _incentive_write(program=program, incentive=None, data=item, path=f"incentive_rules[{i}]")
    for i, item in enumerate(questions):
        _question_write(program=program, question=None, data=item, path=f"questions[{i}]")
    audit_record(obj=program, action="create", now=now, actor=actor,
                 changes={"code": program.code, "seasons": len(seasons),
                          "participation_rules": len(participation_rules),
                          "incentive_rules": len(incentive_rules), "questions": len(questions)})
    program_changed.send(sender=Program, program=program, change="created", now=now, actor=actor)
    return program


@use_case("program.update", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def program_update(*, program: Program, data: Mapping[str, Any], now: dt.datetime, actor: Any) -> Program:
    """Change program fields (not the status). ``code``, ``time_zone`` and ``program_type`` are frozen once the
    program has left DRAFT. Raises ``DomainValidationError`` per field, ``ConflictError`` if the program is closed."""
    _unknown_fields(data, PROGRAM_FIELDS)
    program = _lock_program(program)
    _require_editable(program)
    changed = {k: v for k, v in data.items() if getattr(program, k) != v}
    if program.status != ProgramStatus.DRAFT:
        frozen = [k for k in FROZEN_AFTER_DRAFT if k in changed]
        if frozen:
            raise DomainValidationError({k: [f"{k} cannot change once the program has been activated."]
                                         for k in frozen})
    merged = {f: getattr(program, f) for f in PROGRAM_FIELDS} | dict(data)
    errors = validate_program_values(merged)
    if errors:
        raise DomainValidationError(errors)
    before = _before(program, changed)
    for key, value in changed.items():
        setattr(program, key, value)
    _full_clean(program)
    program.updated_at = now
    program.save()
    if changed:
        audit_record(obj=program, action="update", now=now, actor=actor,
                     changes={k: [_audit_value(before[k]), _audit_value(v)] for k, v in changed.items()})
        program_changed.send(sender=Program, program=program, change="updated", now=now, actor=actor)
    return program


@use_case("program.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def program_delete(*, program: Program, now: dt.datetime, actor: Any) -> None:
    """Delete a DRAFT program (one that never took enrollments). Others are closed instead."""
    program = _lock_program(program)
    if program.status != ProgramStatus.DRAFT:
        raise ConflictError(f"Program {program.code} is {program.status}; only draft programs can be deleted "
                            "(close it instead).", code="program_not_draft")
    audit_record(obj=program, action="update", now=now, actor=actor, reason="deleted",
                 code=audit_code(program, "delete"))
    program_changed.send(sender=Program, program=program, change="deleted", now=now, actor=actor)
    program.delete()


def program_missing_for_activation(program: Program) -> list[str]:
    """What an ACTIVE program needs and ``program`` lacks (a season, a participation rule, an incentive rule)."""
    missing = []
    if not program.seasons.exists():
        missing.append("at least one season")
    if not program.participation_rules.exists():
        missing.append("a participation rule")
    if not program.incentive_rules.exists():
        missing.append("an incentive rule")
    return missing


def _change_status(*, program: Program, sources: frozenset[str], to: str, verb: str, now: dt.datetime, actor: Any,
                   reason: str) -> Program:
    """Move the program to ``to`` if it is in one of ``sources`` (and the transition map allows it); audited."""
    with transaction.atomic():
        locked = _lock_program(program)
        if locked.status not in sources:
            raise TransitionNotAllowed(
                f"Program {locked.code} is {locked.status}: {verb} applies to "
                f"{' or '.join(sorted(sources))} programs.", from_status=locked.status, to_status=to)
        if verb == "activate":
            missing = program_missing_for_activation(locked)
            if missing:
                raise ConflictError(f"Program {locked.code} cannot be activated: it needs {', '.join(missing)}.",
                                    code="program_incomplete")
        transition(obj=locked, to=to, allowed=PROGRAM_TRANSITIONS, now=now, actor=actor, reason=reason or verb)
    if isinstance(program, Program):
        program.status, program.updated_at = locked.status, locked.updated_at
    return locked


@use_case("program.activate", Cap.MANAGE_PROGRAMS)
def program_activate(*, program: Program, now: dt.datetime, actor: Any, reason: str = "") -> Program:
    """DRAFT -> ACTIVE. Refused (409) if the program lacks a season, a participation rule or an incentive rule."""
    return _change_status(program=program, sources=frozenset({ProgramStatus.DRAFT}), to=ProgramStatus.ACTIVE,
                          verb="activate", now=now, actor=actor, reason=reason)


@use_case("program.suspend", Cap.MANAGE_PROGRAMS)
def program_suspend(*, program: Program, now: dt.datetime, actor: Any, reason: str = "") -> Program:
    """ACTIVE -> SUSPENDED: no new enrollments or events until resumed."""
    return _change_status(program=program, sources=frozenset({ProgramStatus.ACTIVE}), to=ProgramStatus.SUSPENDED,
                          verb="suspend", now=now, actor=actor, reason=reason)


@use_case("program.resume", Cap.MANAGE_PROGRAMS)
def program_resume(*, program: Program, now: dt.datetime, actor: Any, reason: str = "") -> Program:
    """SUSPENDED -> ACTIVE."""
    return _change_status(program=program, sources=frozenset({ProgramStatus.SUSPENDED}), to=ProgramStatus.ACTIVE,
                          verb="resume", now=now, actor=actor, reason=reason)


@use_case("program.close", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def program_close(*, program: Program, now: dt.datetime, actor: Any, reason: str = "") -> Program:
    """ACTIVE or SUSPENDED -> CLOSED (final). Its enrollments end today (local date in the program's zone; the
    ``program_closed`` signal, received by enrollments), so their devices are free for other programs."""
    closed = _change_status(program=program, sources=frozenset({ProgramStatus.ACTIVE, ProgramStatus.SUSPENDED}),
                            to=ProgramStatus.CLOSED, verb="close", now=now, actor=actor, reason=reason)
    program_closed.send(sender=Program, program=closed, closed_on=program_local_today(closed, now), now=now,
                        actor=actor)
    return closed


@use_case("program.activate_due", Cap.MANAGE_PROGRAMS)
def programs_activate_due(*, now: dt.datetime, actor: Any) -> list[int]:
    """Activate DRAFT programs with ``auto_activate`` whose enrollment has opened (local date in their zone).

    Incomplete programs are skipped (logged) and retried on the next run; running twice changes nothing.
    Returns the ids activated.
    """
    activated = []
    candidates = Program.objects.filter(status=ProgramStatus.DRAFT, auto_activate=True,
                                        enrollment_opens_on__isnull=False).order_by("id")
    for program in candidates:
        if program.enrollment_opens_on > program_local_today(program, now):
            continue
        try:
            program_activate(program=program, now=now, actor=actor, reason="enrollment opened")
        except ConflictError as exc:
            logger.warning("program %s not activated: %s", program.code, exc.message)
            continue
        activated.append(program.pk)
    return activated


# --- seasons -------------------------------------------------------------------------------------------------------

def _season_write(*, program: Program, season: Season | None, data: Mapping[str, Any], path: str = "") -> Season:
    _unknown_fields(data, SEASON_FIELDS)
    season = season or Season(program=program)
    for key, value in data.items():
        setattr(season, key, value)
    _full_clean(season, exclude=["program"], path=path, pure=rules.validate_season)
    others = list(program.seasons.exclude(pk=season.pk)) if season.pk else list(program.seasons.all())
    same_name = [s for s in others if s.name == season.name]
    if same_name:
        raise DomainValidationError(_prefixed({"name": [f"Program {program.code} already has a season named "
                                                        f"{season.name!r}."]}, path))
    for problem_season, message in rules.season_overlaps([*others, season]):
        field = "start_date" if problem_season is season else "end_date"
        raise DomainValidationError(_prefixed({field: [message]}, path))
    season.save()
    return season


def _require_not_started(program: Program, day: dt.date, now: dt.datetime, what: str) -> None:
    if program.status != ProgramStatus.DRAFT and day <= program_local_today(program, now):
        raise ConflictError(f"{what} of program {program.code} is already in effect ({day}); it cannot be changed. "
                            "Add a new one for later dates instead.", code="in_effect")


@use_case("season.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def season_create(*, program: Program, data: Mapping[str, Any], now: dt.datetime, actor: Any) -> Season:
    """Add a season (local dates, both inclusive). Refuses overlapping seasons, naming the other season."""
    program = _lock_program(program)
    _require_editable(program)
    season = _season_write(program=program, season=None, data=data)
    _audit_item(season, action="create", now=now, actor=actor, data=data)
    return season


@use_case("season.update", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def season_update(*, season: Season, data: Mapping[str, Any], now: dt.datetime, actor: Any) -> Season:
    program = _lock_program(season.program_id)
    _require_editable(program)
    season = Season.objects.get(pk=season.pk)
    _require_not_started(program, season.start_date, now, f"Season {season.name!r}")
    before = _before(season, data)
    season = _season_write(program=program, season=season, data=data)
    _audit_item(season, action="update", now=now, actor=actor, data=data, before=before)
    return season


@use_case("season.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def season_delete(*, season: Season, now: dt.datetime, actor: Any) -> None:
    program = _lock_program(season.program_id)
    _require_editable(program)
    _require_not_started(program, season.start_date, now, f"Season {season.name!r}")
    _audit_item(season, action="delete", now=now, actor=actor)
    season.delete()


# --- participation rules -------------------------------------------------------------------------------------------

def _rule_write(*, program: Program, rule: ParticipationRule | None, data: Mapping[str, Any],
                path: str = "") -> ParticipationRule:
    _unknown_fields(data, RULE_FIELDS)
    rule = rule or ParticipationRule(program=program)
    for key, value in data.items():
        setattr(rule, key, value)
    _full_clean(rule, exclude=["program"], path=path, pure=rules.validate_participation_rule)
    if program.participation_rules.filter(effective_from=rule.effective_from).exclude(pk=rule.pk).exists():
        raise DomainValidationError(_prefixed(
            {"effective_from": [f"Program {program.code} already has a rule effective from {rule.effective_from}."]},
            path))
    rule.save()
    return rule


@use_case("participation_rule.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def participation_rule_create(*, program: Program, data: Mapping[str, Any], now: dt.datetime,
                              actor: Any) -> ParticipationRule:
    """Add a participation rule effective from a local date (the latest rule in effect on a day wins).

    On an active program the new rule must start after today (local), so past events keep their rules.
    """
    program = _lock_program(program)
    _require_editable(program)
    if data.get("effective_from") is not None:
        _require_not_started(program, data["effective_from"], now, "A participation rule")
    rule = _rule_write(program=program, rule=None, data=data)
    _audit_item(rule, action="create", now=now, actor=actor, data=data)
    return rule


@use_case("participation_rule.update", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def participation_rule_update(*, rule: ParticipationRule, data: Mapping[str, Any], now: dt.datetime,
                              actor: Any) -> ParticipationRule:
    program = _lock_program(rule.program_id)
    _require_editable(program)
    rule = ParticipationRule.objects.get(pk=rule.pk)
    _require_not_started(program, rule.effective_from, now, f"The participation rule from {rule.effective_from}")
    if data.get("effective_from") is not None:
        _require_not_started(program, data["effective_from"], now, "A participation rule")
    before = _before(rule, data)
    rule = _rule_write(program=program, rule=rule, data=data)
    _audit_item(rule, action="update", now=now, actor=actor, data=data, before=before)
    return rule


@use_case("participation_rule.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def participation_rule_delete(*, rule: ParticipationRule, now: dt.datetime, actor: Any) -> None:
    program = _lock_program(rule.program_id)
    _require_editable(program)
    _require_not_started(program, rule.effective_from, now, f"The participation rule from {rule.effective_from}")
    _audit_item(rule, action="delete", now=now, actor=actor)
    rule.delete()


# --- incentive rules -----------------------------------------------------------------------------------------------

def _incentive_write(*, program: Program, incentive: IncentiveRule | None, data: Mapping[str, Any],
                     path: str = "") -> IncentiveRule:
    _unknown_fields(data, INCENTIVE_FIELDS)
    incentive = incentive or IncentiveRule(program=program)
    for key, value in data.items():
        setattr(incentive, key, value)

    def pure(obj):
        errors = rules.validate_incentive_rule(obj)
        if obj.price_set_id and obj.price_set.program_id != program.pk:
            errors.setdefault("price_set", []).append(
                f"Price set {obj.price_set.name!r} belongs to another program; use one of program {program.code}.")
        if obj.season_id and obj.season.program_id != program.pk:
            errors.setdefault("season", []).append(f"Season {obj.season.name!r} belongs to another program.")
        return errors

    _full_clean(incentive, exclude=["program"], path=path, pure=pure)
    incentive.save()
    return incentive


def _require_unsettled(stored: IncentiveRule, data: Mapping[str, Any] | None) -> None:
    """Refuse (``ConflictError`` from the ``incentive_rule_changing`` receivers) changing or deleting (``data``
    None) an incentive rule a settlement has been priced with: a recalculation would reprice money already settled.
    Its description alone may change."""
    uses = {(stored.kind, stored.season_id)}
    if data is not None:
        changed = {k for k, v in data.items() if getattr(stored, k, None) != v and k != "description"}
        if not changed:
            return
        season = data.get("season", stored.season)
        uses.add((data.get("kind", stored.kind), getattr(season, "pk", season)))
    incentive_rule_changing.send(sender=IncentiveRule, rule=stored, uses=sorted(uses, key=str))


@use_case("incentive_rule.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def incentive_rule_create(*, program: Program, data: Mapping[str, Any], now: dt.datetime,
                          actor: Any) -> IncentiveRule:
    """Add an incentive rule; checks the kind/basis combination and that price set and season are the program's."""
    program = _lock_program(program)
    _require_editable(program)
    season = data.get("season")
    incentive_rule_changing.send(sender=IncentiveRule, rule=IncentiveRule(program=program, kind=data.get("kind")),
                                 uses=[(data.get("kind"), getattr(season, "pk", season))])
    incentive = _incentive_write(program=program, incentive=None, data=data)
    _audit_item(incentive, action="create", now=now, actor=actor, data=data)
    return incentive


@use_case("incentive_rule.update", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def incentive_rule_update(*, incentive: IncentiveRule, data: Mapping[str, Any], now: dt.datetime,
                          actor: Any) -> IncentiveRule:
    program = _lock_program(incentive.program_id)
    _require_editable(program)
    incentive = IncentiveRule.objects.get(pk=incentive.pk)
    _require_unsettled(incentive, data)
    before = _before(incentive, data)
    incentive = _incentive_write(program=program, incentive=incentive, data=data)
    _audit_item(incentive, action="update", now=now, actor=actor, data=data, before=before)
    return incentive


@use_case("incentive_rule.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def incentive_rule_delete(*, incentive: IncentiveRule, now: dt.datetime, actor: Any) -> None:
    program = _lock_program(incentive.program_id)
    _require_editable(program)
    _require_unsettled(IncentiveRule.objects.get(pk=incentive.pk), None)
    _audit_item(incentive, action="delete", now=now, actor=actor)
    incentive.delete()


# --- qualification questions ---------------------------------------------------------------------------------------

def _question_write(*, program: Program, question: QualificationQuestion | None, data: Mapping[str, Any],
                    path: str = "") -> QualificationQuestion:
    _unknown_fields(data, QUESTION_FIELDS)
    question = question or QualificationQuestion(program=program)
    for key, value in data.items():
        setattr(question, key, value)

    def pure(obj):
        errors = rules.validate_question(obj)
        if program.questions.filter(code=obj.code).exclude(pk=obj.pk).exists():
            errors.setdefault("code", []).append(f"Program {program.code} already has a question {obj.code!r}.")
        return errors

    _full_clean(question, exclude=["program"], path=path, pure=pure)
    question.save()
    return question


@use_case("question.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def question_create(*, program: Program, data: Mapping[str, Any], now: dt.datetime,
                    actor: Any) -> QualificationQuestion:
    """Add a qualification question asked at enrollment."""
    program = _lock_program(program)
    _require_editable(program)
    question = _question_write(program=program, question=None, data=data)
    _audit_item(question, action="create", now=now, actor=actor, data=data)
    return question


@use_case("question.update", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def question_update(*, question: QualificationQuestion, data: Mapping[str, Any], now: dt.datetime,
                    actor: Any) -> QualificationQuestion:
    program = _lock_program(question.program_id)
    _require_editable(program)
    question = QualificationQuestion.objects.get(pk=question.pk)
    before = _before(question, data)
    question = _question_write(program=program, question=question, data=data)
    _audit_item(question, action="update", now=now, actor=actor, data=data, before=before)
    return question


@use_case("question.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def question_delete(*, question: QualificationQuestion, now: dt.datetime, actor: Any) -> None:
    program = _lock_program(question.program_id)
    _require_editable(program)
    _audit_item(question, action="delete", now=now, actor=actor)
    question.delete()


# --- mutual exclusions ---------------------------------------------------------------------------------------------

@use_case("mutual_exclusion.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def mutual_exclusion_create(*, program_a: Program, program_b: Program, reason: str = "", now: dt.datetime,
                            actor: Any) -> MutualExclusion:
    """Declare two programs mutually exclusive (stored once, lower id first).

    Raises ``DomainValidationError`` for a program paired with itself, ``ConflictError`` if the pair exists, or
    (code ``exclusion_conflict``, from the ``programs.signals.mutual_exclusion_creating`` receivers) while a service
    point or device is in both programs at overlapping dates from today (the first program's local date) on, naming
    each and their enrollments: the rule would be broken from the start and both programs' events would call them.
    """
    if program_a.pk == program_b.pk:
        raise DomainValidationError({"program_b": [f"Program {program_a.code} cannot exclude itself."]})
    low, high = sorted((program_a, program_b), key=lambda p: p.pk)
    existing = MutualExclusion.objects.filter(program_a=low, program_b=high).first()
    if existing:
        raise ConflictError(f"Programs {low.code} and {high.code} are already mutually exclusive.",
                            code="exclusion_exists")
    mutual_exclusion_creating.send(sender=MutualExclusion, program_a=program_a, program_b=program_b,
                                   on=now.astimezone(zone(program_a.time_zone)).date(), now=now, actor=actor)
    try:
        with transaction.atomic():
            exclusion = MutualExclusion.objects.create(program_a=low, program_b=high, reason=reason)
    except IntegrityError as exc:  # a concurrent request created the same pair
        raise ConflictError(f"Programs {low.code} and {high.code} are already mutually exclusive.",
                            code="exclusion_exists") from exc
    audit_record(obj=exclusion, action="create", now=now, actor=actor, reason=reason,
                 changes={"program_a": low.code, "program_b": high.code})
    return exclusion


@use_case("mutual_exclusion.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def mutual_exclusion_delete(*, exclusion: MutualExclusion, now: dt.datetime, actor: Any) -> None:
    audit_record(obj=exclusion, action="update", now=now, actor=actor, reason="deleted",
                 code=audit_code(exclusion, "delete"))
    exclusion.delete()


# --- interval price sets -------------------------------------------------------------------------------------------

def _parse_row_start(value: Any, tz, row: int) -> dt.datetime:
    """The UTC start of price row ``row``; refuses a text that is not ISO 8601, a local time that does not exist and
    a year outside ``CPM_IMPORT_MIN_YEAR``..``CPM_IMPORT_MAX_YEAR`` (checked before any zone arithmetic: year 9999 or
    0001 with an offset would overflow)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise DomainValidationError({f"rows[{row - 1}].interval_start": [
                f"Row {row}: {value!r} is not an ISO 8601 date-time."]}) from exc
    if not isinstance(value, dt.datetime):
        raise DomainValidationError({f"rows[{row - 1}].interval_start": [f"Row {row}: interval_start is required."]})
    low, high = settings.CPM_IMPORT_MIN_YEAR, settings.CPM_IMPORT_MAX_YEAR
    if not low <= value.year <= high:
        raise DomainValidationError({f"rows[{row - 1}].interval_start": [
            f"Row {row}: interval_start {str(text)[:40]} is outside the plausible years {low}..{high} "
            "(CPM_IMPORT_MIN_YEAR, CPM_IMPORT_MAX_YEAR)."]})
    if value.tzinfo is None:
        local = value.replace(tzinfo=tz)
        round_trip = local.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None)
        if round_trip != value:
            raise DomainValidationError({f"rows[{row - 1}].interval_start": [
                f"Row {row}: local time {value:%Y-%m-%d %H:%M} does not exist in {tz.key} (spring DST change)."]})
        value = local
    return value.astimezone(dt.UTC)


def _check_price_digits(price: Decimal, given: Any, row: int) -> None:
    """Refuse a price the column (``IntervalPrice.price_per_kwh``) cannot hold exactly: PostgreSQL fails on too many
    digits (numeric field overflow) and rounds extra decimals silently, SQLite keeps both, so either would pay
    something else than the file says."""
    column = IntervalPrice._meta.get_field("price_per_kwh")
    places = column.decimal_places
    ceiling = Decimal(10) ** (column.max_digits - places) - Decimal(1).scaleb(-places)
    key = f"rows[{row - 1}].price_per_kwh"
    if price > ceiling:
        raise DomainValidationError({key: [f"Row {row}: price_per_kwh {str(given).strip()[:40]} is more than "
                                           f"{ceiling} $/kWh."]})
    if price != price.quantize(Decimal(1).scaleb(-places)):
        raise DomainValidationError({key: [f"Row {row}: price_per_kwh {str(given).strip()[:40]} has more than "
                                           f"{places} decimal places."]})


def _repeated_hour_hint(local: dt.datetime, tz) -> str:
    """For the first of a wall-clock time the clocks repeat (the autumn night), how to type the second: a row
    without an offset is read as the first, so a second row of that time repeated it without saying why."""
    second = local.replace(fold=1)
    if local.fold or second.utcoffset() == local.utcoffset():
        return ""
    offset = second.isoformat()[-6:]
    return (f" {local:%H:%M} happens twice in {tz.key} on {local:%Y-%m-%d} (the clocks go back): a time without an "
            f"offset is the first ({local:%Z}); give the second its offset, {local:%Y-%m-%dT%H:%M:%S}{offset} "
            f"({second:%Z}).")


@use_case("price_set.create", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def price_set_create(*, program: Program, name: str, interval_minutes: int, rows: Iterable[Mapping[str, Any]],
                     now: dt.datetime, actor: Any) -> IntervalPriceSet:
    """Create an interval price set from rows ``{"interval_start", "price_per_kwh"}``.

    ``interval_start``: an aware datetime or ISO string with offset (any zone), or a naive one / ISO string without
    offset read as local wall-clock time in the program's zone (on the autumn DST night the first 01:xx is taken;
    give an offset for the second). Starts must be aligned to ``interval_minutes`` on the program's local clock and
    unique, in the years ``CPM_IMPORT_MIN_YEAR``..``CPM_IMPORT_MAX_YEAR``. ``price_per_kwh``: dollars per kWh, zero
    or more, what the column holds exactly (at most 99,999.99999, 5 decimal places). Rows are numbered from 1 in
    error messages; nothing is written if any row is refused.
    """
    program = _lock_program(program)
    _require_editable(program)
    if interval_minutes not in (5, 15, 30, 60):
        raise DomainValidationError({"interval_minutes": ["interval_minutes must be 5, 15, 30 or 60."]})
    if not (name or "").strip():
        raise DomainValidationError({"name": ["A price set needs a name."]})
    if program.price_sets.filter(name=name).exists():
        raise DomainValidationError({"name": [f"Program {program.code} already has a price set named {name!r}."]})
    tz = zone(program.time_zone)
    prices: dict[dt.datetime, tuple[int, Decimal]] = {}
    for row, item in enumerate(rows, start=1):
        start = _parse_row_start(item.get("interval_start"), tz, row)
        local = start.astimezone(tz)
        if local.second or local.microsecond or (local.hour * 60 + local.minute) % interval_minutes:
            raise DomainValidationError({f"rows[{row - 1}].interval_start": [
                f"Row {row}: {local:%Y-%m-%d %H:%M} local is not aligned to {interval_minutes}-minute intervals."]})
        try:
            price = to_decimal(str(item.get("price_per_kwh")).strip())
        except (InvalidOperation, ValueError) as exc:
            raise DomainValidationError({f"rows[{row - 1}].price_per_kwh": [
                f"Row {row}: {item.get('price_per_kwh')!r} is not a number."]}) from exc
        if not price.is_finite() or price < 0:
            raise DomainValidationError({f"rows[{row - 1}].price_per_kwh": [
                f"Row {row}: price_per_kwh must be zero or more."]})
        _check_price_digits(price, item.get("price_per_kwh"), row)
        if start in prices:
            raise DomainValidationError({f"rows[{row - 1}].interval_start": [
                f"Row {row}: interval {local:%Y-%m-%d %H:%M %Z} repeats row {prices[start][0]}."
                + _repeated_hour_hint(local, tz)]})
        prices[start] = (row, price)
    if not prices:
        raise DomainValidationError({"rows": ["A price set needs at least one row."]})
    price_set = IntervalPriceSet.objects.create(program=program, name=name, interval_minutes=interval_minutes)
    IntervalPrice.objects.bulk_create([
        IntervalPrice(price_set=price_set, interval_start=start, price_per_kwh=price)
        for start, (_, price) in sorted(prices.items())])
    audit_record(obj=price_set, action="create", now=now, actor=actor, changes={"rows": len(prices)})
    return price_set


@use_case("price_set.delete", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def price_set_delete(*, price_set: IntervalPriceSet, now: dt.datetime, actor: Any) -> None:
    """Delete a price set no incentive rule uses (else 409 naming the rule)."""
    program = _lock_program(price_set.program_id)
    _require_editable(program)
    user = IncentiveRule.objects.filter(price_set=price_set).first()
    if user:
        raise ConflictError(f"Price set {price_set.name!r} is used by incentive rule {user.pk}.", code="in_use")
    audit_record(obj=price_set, action="update", now=now, actor=actor, reason="deleted",
                 code=audit_code(price_set, "delete"))
    price_set.delete()
