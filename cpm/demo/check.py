"""Independent check of the demo's bill credits: recompute them from the exported file, the stored interval data and
the programs' published incentive terms with a deliberately simple implementation (plain Python loops), sharing
NO code with ``settlement`` (no measurement, baseline engine, incentive arithmetic or money helpers).

Definitions implemented here, straight from their sources:

- CAISO 10-in-10 customer load baseline (CAISO Business Practice Manual for Demand Response, "Customer Load
  Baseline"): for a weekday event, the similar days are the non-event, non-holiday weekdays of the 45 days before
  the event day; the 10 most recent are used (fewer than 10: no baseline, nothing paid). Days on which the service
  point took part in any event (any program, not cancelled) are not similar days. Baseline of an hour = mean load of the
  selected days in that hour. Day-of (load point) adjustment: ratio of the actual to the baseline load over the
  three hours before the event excluding the hour just before it, limited to +/-20 %. kWh avoided = sum over the
  counted event hours of (adjusted baseline - actual); an hour counts when it ends at or before an opt-out.
- Net load (issue 16): a service point with received-channel (export) readings is measured on delivered - received
  in every hour, never clamped at zero; where the program does not count reduction below zero net load, the actual
  load counted in an event hour is max(actual, min(adjusted baseline, 0)).
- Abnormal days (issue 16): days recorded for the service point, its premise's feeder, substation or territory, or
  the program, and days whose readings are all zero, are not similar days (like event days).
- Holidays: NERC (New Year's Day, Memorial Day, Independence Day, Labor Day, Thanksgiving, Christmas; a Sunday
  holiday moves to Monday).
- Per kWh (SCE Save Power Days design): kWh avoided (stated to 0.0001 kWh) x $/kWh per event, never negative,
  rounded to the cent; the season's per-kWh earnings capped at the season cap ($60); the enrollment bonus once.
- Per kW (ConnectedSolutions pay, Efficiency Maine proration): each event's kW = battery discharge in the hours
  that end at or before an opt-out (kWh) / event hours, stated to 0.0001 kW: a battery that opts out part-way counts
  what it delivered, prorated over the whole event ("9 kW for 1 h of a 3 h event = 3 kW"); an event opted out
  before it began counts 0 kW, or is left out when the rule says opted-out events do not count as zero; season
  credit = mean over the season's events x $/kW.
- Peak-time rebate (PGE Peak Time Rebates): the notice is the dispatch, so a customer is paid (per kWh, as above)
  only for the events whose notice was sent to them; a participation of a customer never notified must not be
  settled (the message records are read through the app registry: the check imports no module of ``cpm``).
- Monthly (Eversource CT EV): $ x devices per month of the season enrolled; a month with an opted-out event loses
  the rewards that require none.

``check_demo(export_path)`` returns a ``CheckReport``: ``errors`` empty when every account's credits agree with the
export to the cent, line code by line code.

It lives with the demo (``manage.py demo --ci-check`` runs it; ``tests/cpm/test_demo.py`` uses it too) and reads the
stored rows through the apps' models only: it imports no service, selector, engine or helper of any app, nor
``cpm.base``'s money helpers (``tests/cpm/test_demo.py`` checks its imports).
"""

from __future__ import annotations

import array
import csv
import datetime as dt
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")
UTC = dt.UTC
LOOKBACK_DAYS = 45
MAX_DAYS = 10
MIN_DAYS = 10
ADJUSTMENT_LIMIT = 0.20
# Bill line codes of the export (the billing interface's contract).
BONUS, PER_KWH, CAP, PER_KW, MONTHLY = "DRBN", "DRPK", "DRCP", "DRKW", "DRMO"


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def nerc_holidays(year: int) -> set[dt.date]:
    def nth_monday(month: int, n: int) -> dt.date:
        day = dt.date(year, month, 1)
        while day.weekday() != 0:
            day += dt.timedelta(days=1)
        return day + dt.timedelta(weeks=n - 1)

    def last_monday(month: int) -> dt.date:
        day = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
        while day.weekday() != 0:
            day -= dt.timedelta(days=1)
        return day

    thanksgiving = dt.date(year, 11, 1)
    while thanksgiving.weekday() != 3:
        thanksgiving += dt.timedelta(days=1)
    thanksgiving += dt.timedelta(weeks=3)
    days = [dt.date(year, 1, 1), last_monday(5), dt.date(year, 7, 4), nth_monday(9, 1), thanksgiving,
            dt.date(year, 12, 25)]
    return {d + dt.timedelta(days=1) if d.weekday() == 6 else d for d in days}


def decode(blob) -> list[float]:
    values = array.array("d")
    values.frombytes(bytes(blob))
    if sys.byteorder != "little":
        values.byteswap()
    return list(values)


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    accounts: int = 0
    lines: int = 0
    participations: int = 0
    max_kwh_diff: float = 0.0
    expected_total: Decimal = Decimal("0.00")
    exported_total: Decimal = Decimal("0.00")
    ptr_notified: int = 0

    def text(self) -> str:
        status = "PASSED" if not self.errors else f"FAILED ({len(self.errors)} problems)"
        lines = [f"Independent check {status}: {self.accounts} account/program credits and {self.lines} export lines "
                 f"recomputed from the interval data ({self.participations} event participations); expected "
                 f"${self.expected_total}, exported ${self.exported_total}; largest kWh difference per participation "
                 f"vs the stored settlements {self.max_kwh_diff:.6f} kWh."]
        if self.ptr_notified:
            lines.append(f"  Peak-time rebate: {self.ptr_notified} event notices sent; only notified customers' "
                         "participations are settled.")
        lines += [f"  - {e}" for e in self.errors[:30]]
        return "\n".join(lines)


def read_export(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _hourly(rows) -> dict[int, float]:
    """IntervalDay rows (day, minutes, values) -> {UTC epoch hour: kWh}; finer intervals are summed into the hour,
    an hour with a missing (NaN) or absent sub-interval is left out."""
    parts: dict[int, list[float]] = defaultdict(list)
    needed: dict[int, int] = {}
    for day, minutes, blob in rows:
        base = int(dt.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        for i, v in enumerate(decode(blob)):
            start = base + i * minutes * 60
            hour = start - start % 3600
            parts[hour].append(v)
            needed[hour] = 60 // minutes
    return {hour: sum(values) for hour, values in parts.items()
            if len(values) == needed[hour] and all(v == v for v in values)}


def caiso_10_in_10(load: dict[int, float], *, event_start: dt.datetime, event_end: dt.datetime, tz: ZoneInfo,
                   excluded_days: set[dt.date], counted_until: dt.datetime,
                   below_zero_counts: bool = True) -> float | None:
    """kWh avoided of one participation (None: fewer than 10 similar days with data, or event data missing)."""
    local_start = event_start.astimezone(tz)
    event_day = local_start.date()
    holidays = nerc_holidays(event_day.year) | nerc_holidays(event_day.year - 1)
    if event_day.weekday() >= 5 or event_day in holidays:
        raise ValueError(f"{event_day} is not a weekday event: 4-in-4 is not implemented in this check")
    n_hours = round((event_end - event_start).total_seconds() / 3600)
    first_hour = local_start.hour
    adj_hours = [first_hour - 4, first_hour - 3, first_hour - 2]
    event_hours = [first_hour + k for k in range(n_hours)]

    def key(day: dt.date, hour: int) -> int:
        return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(UTC).timestamp())

    selected = []
    for back in range(1, LOOKBACK_DAYS + 1):
        day = event_day - dt.timedelta(days=back)
        if day.weekday() >= 5 or day in holidays or day in excluded_days:
            continue
        if any(key(day, h) not in load for h in adj_hours + event_hours):
            continue
        selected.append(day)
        if len(selected) == MAX_DAYS:
            break
    if len(selected) < MIN_DAYS:
        return None
    baseline = {h: sum(load[key(d, h)] for d in selected) / len(selected) for h in adj_hours + event_hours}
    if any(key(event_day, h) not in load for h in event_hours):
        return None
    actual_adj = [load.get(key(event_day, h)) for h in adj_hours]
    base_adj = sum(baseline[h] for h in adj_hours)
    ratio = 1.0
    if base_adj > 0 and all(a is not None for a in actual_adj):
        ratio = sum(actual_adj) / base_adj
    ratio = min(max(ratio, 1 - ADJUSTMENT_LIMIT), 1 + ADJUSTMENT_LIMIT)
    total = 0.0
    for h in event_hours:
        hour_end = dt.datetime(event_day.year, event_day.month, event_day.day, h, tzinfo=tz) + dt.timedelta(hours=1)
        if hour_end <= counted_until:
            actual = load[key(event_day, h)]
            if not below_zero_counts:
                actual = max(actual, min(baseline[h] * ratio, 0.0))
            total += baseline[h] * ratio - actual
    return total


def zero_days(load: dict[int, float], tz: ZoneInfo) -> set[dt.date]:
    """Local days whose hourly readings (those present) are all zero."""
    seen: dict[dt.date, bool] = {}
    for hour, value in load.items():
        day = dt.datetime.fromtimestamp(hour, UTC).astimezone(tz).date()
        seen[day] = seen.get(day, True) and value == 0
    return {day for day, zero in seen.items() if zero}


def recorded_abnormal(program, sp_ids) -> dict[int, set[dt.date]]:
    """Abnormal days recorded for each service point: its own, its premise's feeder / substation / territory, the
    program's."""
    from devices.models import ServicePoint
    from settlement.models import AbnormalDay

    out: dict[int, set[dt.date]] = defaultdict(set)
    records = list(AbnormalDay.objects.values_list("scope", "service_point_id", "program_id", "network_id", "day"))
    if not records:
        return out
    places = {pk: {"feeder": f, "substation": s, "territory": t} for pk, f, s, t in ServicePoint.objects.filter(
        pk__in=sp_ids).values_list("pk", "premise__feeder", "premise__substation", "premise__service_territory")}
    for scope, sp, program_id, network, day in records:
        for pk in sp_ids:
            if ((scope == "service_point" and sp == pk) or (scope == "program" and program_id == program.pk)
                    or (scope in ("feeder", "substation", "territory") and network
                        and places.get(pk, {}).get(scope) == network)):
                out[pk].add(day)
    return out


def check_demo(export_path: Path) -> CheckReport:
    from django.db.models import Q

    from enrollments.models import Enrollment, ProgramSubscription
    from events.models import Event, Participation
    from programs.models import IncentiveRule, Program, Season
    from settlement.models import EventSettlement, IntervalDay

    report = CheckReport()
    rows = read_export(export_path)
    report.lines = len(rows)
    exported: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        exported[(row["account_number"], row["program_code"])][row["line_code"]] += Decimal(row["amount"])
        report.exported_total += Decimal(row["amount"])
    expected: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    stored_kwh = dict(EventSettlement.objects.values_list("participation_id", "kwh_avoided"))

    for program in Program.objects.filter(enrollments__isnull=False).distinct():
        tz = ZoneInfo(program.time_zone)
        rules = list(IncentiveRule.objects.filter(program=program))
        season = Season.objects.get(program=program, start_date=dt.date(2011, 6, 1))
        events = list(Event.objects.filter(program=program, status="completed").order_by("start"))
        parts = list(Participation.objects.filter(event__in=events).exclude(status="cancelled")
                     .select_related("enrollment__account", "event"))
        report.participations += len(parts)
        if program.program_type == "peak_time_rebate":
            from django.apps import apps

            message = apps.get_model("notifications", "Message")
            notified = set(message.objects.filter(event__in=events, kind="event_notice", status="sent")
                           .values_list("event_id", "customer_id"))
            for p in parts:
                if (p.event_id, p.enrollment.account.customer_id) not in notified:
                    report.errors.append(f"{program.code}: participation {p.pk} of a customer never notified of "
                                         f"event {p.event_id} is counted (a peak-time rebate pays only on notice)")
            report.ptr_notified = len({k for k in notified if k[0] in {e.pk for e in events}})
        enrollments = list(Enrollment.objects.filter(program=program, status="active").select_related("account"))
        kinds = {r.kind for r in rules}
        unknown = kinds - {"enrollment_bonus", "performance_kwh", "season_cap", "performance_kw", "monthly",
                           "opt_out_penalty"}
        if unknown and (events or enrollments):
            report.errors.append(f"{program.code}: incentive kinds {sorted(unknown)} are not implemented in the check")
            continue
        for rule in rules:
            if rule.kind == "enrollment_bonus":
                if rule.basis != "flat":
                    report.errors.append(f"{program.code}: bonus basis {rule.basis} not implemented")
                for e in enrollments:
                    expected[(e.account.account_number, program.code)][BONUS] += rule.amount
        # Per kWh against the CAISO 10-in-10 baseline.
        kwh_rule = next((r for r in rules if r.kind == "performance_kwh"), None)
        if kwh_rule is not None:
            if program.baseline_params or kwh_rule.basis != "per_kwh":
                report.errors.append(f"{program.code}: baseline overrides / price sets are not implemented")
            sp_ids = {p.service_point_id for p in parts}
            load_rows = defaultdict(list)
            for sp, day, minutes, blob in IntervalDay.objects.filter(
                    service_point_id__in=sp_ids, device__isnull=True, channel="delivered", is_current=True,
                    day__gte=dt.date(2011, 3, 1), day__lte=dt.date(2011, 10, 2)).values_list(
                    "service_point_id", "day", "interval_minutes", "values"):
                load_rows[sp].append((day, minutes, blob))
            loads = {sp: _hourly(r) for sp, r in load_rows.items()}
            received_rows = defaultdict(list)
            for sp, day, minutes, blob in IntervalDay.objects.filter(
                    service_point_id__in=sp_ids, device__isnull=True, channel="received", is_current=True,
                    day__gte=dt.date(2011, 3, 1), day__lte=dt.date(2011, 10, 2)).values_list(
                    "service_point_id", "day", "interval_minutes", "values"):
                received_rows[sp].append((day, minutes, blob))
            for sp, r in received_rows.items():  # net load: delivered - received, hour by hour
                received = _hourly(r)
                loads[sp] = {h: v - received[h] for h, v in loads.get(sp, {}).items() if h in received}
            abnormal = recorded_abnormal(program, sp_ids)
            for sp, load in loads.items():
                abnormal[sp] |= zero_days(load, tz)
            sp_days: dict[int, set[dt.date]] = defaultdict(set)
            for p in Participation.objects.exclude(status="cancelled").values_list("service_point_id", "start"):
                sp_days[p[0]].add(p[1].astimezone(tz).date())
            season_kwh_credit: dict[str, Decimal] = defaultdict(Decimal)
            for p in parts:
                event = p.event
                day = event.start.astimezone(tz).date()
                excluded = {d for d in sp_days[p.service_point_id] | abnormal[p.service_point_id] if d < day}
                until = min(p.opted_out_at, event.end) if p.opted_out_at else event.end
                kwh = caiso_10_in_10(loads.get(p.service_point_id, {}), event_start=event.start, event_end=event.end,
                                     tz=tz, excluded_days=excluded, counted_until=until,
                                     below_zero_counts=program.counts_reduction_below_zero_net_load)
                if kwh is None:
                    continue  # no baseline: nothing is paid
                stated = Decimal(f"{kwh:.4f}")
                if p.pk in stored_kwh:
                    report.max_kwh_diff = max(report.max_kwh_diff, abs(float(stored_kwh[p.pk]) - kwh))
                credit = cents(max(stated * kwh_rule.amount, Decimal(0)))
                if season.start_date <= day <= season.end_date:
                    season_kwh_credit[p.enrollment.account.account_number] += credit
            cap = next((r.amount for r in rules if r.kind == "season_cap"), None)
            for account, credit in season_kwh_credit.items():
                expected[(account, program.code)][PER_KWH] += credit
                if cap is not None and credit > cap:
                    expected[(account, program.code)][CAP] -= credit - cap
        # Per kW of battery discharge, averaged over the season's events.
        kw_rule = next((r for r in rules if r.kind == "performance_kw"), None)
        if kw_rule is not None:
            if kw_rule.top_percent_events is not None:
                report.errors.append(f"{program.code}: top-N% events not implemented")
            device_rows = defaultdict(list)
            for dev, day, minutes, blob in IntervalDay.objects.filter(
                    device_id__in={p.device_id for p in parts}, channel="received", is_current=True).values_list(
                    "device_id", "day", "interval_minutes", "values"):
                device_rows[dev].append((day, minutes, blob))
            discharge = {dev: _hourly(r) for dev, r in device_rows.items()}
            per_enrollment: dict[int, list[Decimal]] = defaultdict(list)
            for p in parts:
                event = p.event
                if not season.start_date <= event.start.astimezone(tz).date() <= season.end_date:
                    continue
                until = min(p.opted_out_at, event.end) if p.opted_out_at else event.end
                if p.opted_out_at is not None and p.opted_out_at <= p.start:  # opted out before it began
                    if kw_rule.opted_out_counts_zero:
                        per_enrollment[p.enrollment_id].append(Decimal(0))
                    continue
                hours = (event.end - event.start).total_seconds() / 3600
                kwh, hour = 0.0, event.start
                missing = False
                while hour < event.end:
                    if hour + dt.timedelta(hours=1) <= until:
                        value = discharge.get(p.device_id, {}).get(int(hour.timestamp()))
                        if value is None:
                            missing = True
                        else:
                            kwh += value
                    hour += dt.timedelta(hours=1)
                if not missing:
                    per_enrollment[p.enrollment_id].append(Decimal(f"{kwh / hours:.4f}"))
            accounts = {e.pk: e.account.account_number for e in enrollments}
            for enrollment_id, drops in per_enrollment.items():
                average = sum(drops, Decimal(0)) / len(drops)
                credit = cents(max(average * kw_rule.amount, Decimal(0)))
                if credit:
                    expected[(accounts[enrollment_id], program.code)][PER_KW] += credit
        # Monthly incentives over the season (season-end settlement of the season's months).
        monthly = [r for r in rules if r.kind == "monthly"]
        forfeit_month = any(r.kind == "opt_out_penalty" and r.opt_out_consequence == "forfeit_month" for r in rules)
        for e in enrollments if monthly else []:
            devices = ProgramSubscription.objects.filter(enrollment=e, device__isnull=False).filter(
                Q(end_date__isnull=True) | Q(end_date__gt=season.start_date)).count()
            opt_out_months = {p.event.start.astimezone(tz).date().replace(day=1) for p in parts
                              if p.enrollment_id == e.pk and (p.opted_out_at or p.status == "opted_out")}
            month = season.start_date
            while month <= season.end_date:
                next_month = (month + dt.timedelta(days=32)).replace(day=1)
                for rule in monthly:
                    if rule.basis != "per_device":
                        report.errors.append(f"{program.code}: monthly basis {rule.basis} not implemented")
                    if rule.season_id is not None and rule.season_id != season.pk:
                        continue
                    if (rule.requires_no_skipped_event or forfeit_month) and month in opt_out_months:
                        continue
                    if e.effective_date < next_month:
                        expected[(e.account.account_number, program.code)][MONTHLY] += rule.amount * devices
                month = next_month

    keys = set(expected) | set(exported)
    report.accounts = len(keys)
    for key in sorted(keys):
        want = {k: cents(v) for k, v in expected.get(key, {}).items() if cents(v)}
        got = {k: v for k, v in exported.get(key, {}).items() if v}
        report.expected_total += sum(want.values(), Decimal("0.00"))
        if want != got:
            report.errors.append(f"{key[0]} {key[1]}: expected {dict(sorted(want.items()))}, exported "
                                 f"{dict(sorted(got.items()))}")
    return report
