"""Every published program in ../shared/data/programs/real-programs.json must be expressible: build each one's
seasons, participation rules and incentives from the JSON facts through the services, and activate it.

The mapping from the JSON vocabulary to cpm's is the table below; facts cpm does not model are listed in
``NOT_MODELLED`` (so a reader sees what is left out, and why).
"""

import calendar
import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cpm.base.paths import shared_path
from programs import selectors, services
from programs.rules import check_event_against_rule
from tests.actors import TEST_ACTOR

FACTS = shared_path("data", "programs", "real-programs.json")  # beside the clone or a parent of it
pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(not FACTS.exists(), reason="shared program facts not present on this machine")]

YEAR = 2026
DEVICE_TYPES = {"thermostat": "thermostat", "battery": "battery", "ev_charger": "ev_charger",
                "ev_telematics": "ev_charger"}
CUSTOMER_CLASSES = {"residential": "residential", "small_commercial": "small_commercial",
                    "commercial": "commercial_industrial"}
PROGRAM_TYPES = {"thermostat": "thermostat_dr", "battery": "battery_storage", "ev_charger": "ev_managed_charging"}
# Seasons the facts leave undated: the utility's usual residential seasons (stated in the facts' notes).
DEFAULT_SEASON_DATES = {"summer": ("06-01", "09-30"), "winter": ("12-01", "02-28"),
                        "summer and winter event seasons": ("06-01", "09-30")}
# "Seasons" in the facts that are reward periods or dispatch modes, not event seasons.
NOT_EVENT_SEASONS = ("passive dispatch", "off-peak charging reward")
NOT_MODELLED = {
    "ct-energy-storage-solutions": "years 6-10 rates need an enrollment-age condition; upfront step rate unknown",
    "efficiency-maine-small-battery": "the partner's 50 kW aggregate threshold is an aggregator rule",
    "hge-powerwall-dr": "caps are per month (5 alerts), not per season",
    "sce-smart-energy-program": "the 180 h cap is per calendar year while the incentive season is June-September",
}


def season_dates(name, start_md, end_md):
    if start_md is None:
        start_md, end_md = DEFAULT_SEASON_DATES[name]
    start = dt.date(YEAR, *map(int, start_md.split("-")))
    end_month, end_day = map(int, end_md.split("-"))
    end_year = YEAR + 1 if (end_month, end_day) < (start.month, start.day) else YEAR
    if end_month == 2 and end_day >= 28:
        end_day = calendar.monthrange(end_year, 2)[1]
    return start, dt.date(end_year, end_month, end_day)


def rule_from(facts, *, effective_from, window, max_duration_h, max_events):
    days = facts["event_days"]
    rule = {"effective_from": effective_from,
            "weekdays_allowed": days["weekdays"] is not False,
            "weekends_allowed": days["weekends"] is not False,
            "holidays_allowed": days["holidays"] is not False}
    if window:
        rule["window_start"] = dt.time.fromisoformat(window["start"])
        rule["window_end"] = dt.time.fromisoformat(window["end"])
    if max_duration_h:
        rule["max_duration_minutes"] = int(max_duration_h * 60)
    per_season = facts["limit_period"] == "season" or facts["season"]["start_month_day"] == "01-01"
    if max_events and per_season and facts["limit_period"] != "month":
        rule["max_events_per_season"] = max_events
    if facts["max_event_hours_per_day"]:
        rule["max_event_hours_per_day"] = Decimal(str(facts["max_event_hours_per_day"]))
    notice = facts["min_notice"]
    if notice["kind"] in ("hours", "minutes", "day_ahead") and notice["hours"]:
        rule["min_notice_minutes"] = round(notice["hours"] * 60)
    opt_out = facts["opt_out_rule"]
    if opt_out["kind"] == "max_opt_outs_per_season":
        rule.update(opt_out_allowance_kind="count", opt_out_allowance_count=opt_out["value"])
    elif opt_out["kind"] == "min_pct_event_hours":
        rule.update(opt_out_allowance_kind="percent_hours", opt_out_allowance_percent=Decimal(100 - opt_out["value"]))
    return rule


def incentives_from(facts, season_names):
    out = []
    opt_out = facts["opt_out_rule"]
    for item in facts["incentives"]:
        kind, amount, unit = item["kind"], item["amount"], item["unit"].lower()
        conditions = (item["conditions"] or "").lower()
        if amount is None or conditions.startswith("years 6-10"):
            continue
        amount = Decimal(str(amount))
        per_device = "per thermostat" in unit or "per device" in unit
        rule = {"amount": amount, "description": f"{item['unit']}: {item['conditions']}"[:300]}
        if kind == "enrollment":
            rule.update(kind="enrollment_bonus", basis="per_device" if per_device else "flat")
        elif kind == "upfront_capacity":
            basis = "per_kwh_enrolled" if "per kwh" in unit else "per_kw_enrolled" if "per kw" in unit else "flat"
            rule.update(kind="enrollment_bonus", basis=basis)
        elif kind == "seasonal":
            rule.update(kind="seasonal", basis="flat" if "per site" in unit else "per_device")
            if opt_out["kind"] == "max_opt_outs_per_season":
                rule["max_opt_outs"] = opt_out["value"]
            if opt_out["kind"] == "min_pct_event_hours":
                rule["min_participation_share"] = Decimal(opt_out["value"]) / 100
            if "stays enrolled" in conditions:
                rule["season_enrollment"] = "at_season_end"
        elif kind == "monthly":
            rule.update(kind="monthly", basis="flat", requires_no_skipped_event="opt-out" in conditions)
        elif kind == "per_event":
            rule.update(kind="per_event", basis="flat")
        elif kind == "performance_kw":
            rule.update(kind="performance_kw", basis="per_kw", opted_out_counts_zero=True)
            for word in ("winter", "summer"):
                if f"kw-{word}" in unit:
                    rule["season_name"] = next(n for n in season_names if n.lower().startswith(word))
        elif kind == "performance_kwh":
            rule.update(kind="performance_kwh", basis="per_kwh")
        else:
            raise AssertionError(f"unmapped incentive kind {kind}")
        out.append(rule)
    if opt_out["kind"] == "forfeit_monthly_reward":
        out.append({"kind": "opt_out_penalty", "basis": "flat", "amount": Decimal(0),
                    "opt_out_consequence": "forfeit_month"})
    if opt_out["kind"] == "max_opt_outs_per_season":
        out.append({"kind": "opt_out_penalty", "basis": "flat", "amount": Decimal(0),
                    "opt_out_consequence": "forfeit_season"})
    return out


def build(facts, now):
    devices = sorted({DEVICE_TYPES[d] for d in facts["device_types"]})
    baseline = (facts["baseline_method"] or "").lower()
    kinds = {i["kind"] for i in facts["incentives"]}
    data = {
        "code": facts["id"], "name": facts["name"][:200],
        "description": f"{facts['utility']}: {facts['name']}. Source: {facts['source_urls'][0]}",
        "program_type": PROGRAM_TYPES[facts["device_types"][0]], "time_zone": facts["time_zone"],
        "eligible_device_types": devices,
        "eligible_customer_classes": sorted({CUSTOMER_CLASSES[c] for c in facts["customer_classes"]}),
        "settlement_timing": "season_end" if kinds & {"performance_kw", "seasonal"} else "after_event",
        "performance_measurement": "device_telemetry" if "no load baseline" in baseline else "meter_baseline",
    }
    seasons, rules = [], []
    main_start, main_end = season_dates(facts["season"]["name"], facts["season"]["start_month_day"],
                                        facts["season"]["end_month_day"])
    seasons.append({"name": f"{facts['season']['name'][:80]} {YEAR}", "start_date": main_start,
                    "end_date": main_end})
    main_rule = dict(window=facts["event_window_local"], max_duration_h=facts["max_event_duration_h"],
                     max_events=facts["max_events_per_season"])
    rules.append(rule_from(facts, effective_from=dt.date(YEAR, 1, 1), **main_rule))
    for other in facts["other_seasons"]:
        if other["name"].startswith(NOT_EVENT_SEASONS):
            continue
        start, end = season_dates(other["name"], other["start_month_day"], other["end_month_day"])
        seasons.append({"name": f"{other['name'][:80]} {YEAR}", "start_date": start, "end_date": end})
        # The other season's limits take effect at its start; the main season's come back the day after it ends.
        rules.append(rule_from(facts, effective_from=start, window=other["event_window_local"],
                               max_duration_h=other["max_event_duration_h"], max_events=other["max_events_per_season"]))
        rules.append(rule_from(facts, effective_from=end + dt.timedelta(days=1), **main_rule))
    program = services.program_create(data=data, seasons=seasons, participation_rules=rules,
                                      incentive_rules=incentives_from(facts, [s["name"] for s in seasons]),
                                      now=now, actor=TEST_ACTOR)
    return services.program_activate(program=program, now=now, reason="expressibility test", actor=TEST_ACTOR)


@pytest.fixture(scope="module")
def facts():
    return json.loads(FACTS.read_text())


def test_all_published_programs_are_expressible(facts, now):
    assert len(facts) == 12
    programs = {f["id"]: build(f, now) for f in facts}
    assert all(p.status == "active" for p in programs.values())
    for code in NOT_MODELLED:
        assert code in programs

    ngrid = programs["ngrid-ma-connectedsolutions-battery"]
    [perf] = ngrid.incentive_rules.all()
    assert (perf.kind, perf.basis, perf.amount, perf.season.name) == ("performance_kw", "per_kw", Decimal("275"),
                                                                      "summer 2026")
    assert (ngrid.settlement_timing, ngrid.performance_measurement) == ("season_end", "device_telemetry")
    rule = selectors.participation_rule_for(ngrid, dt.date(2026, 7, 1))
    assert (rule.window_start, rule.window_end, rule.max_duration_minutes, rule.max_events_per_season,
            rule.holidays_allowed) == (dt.time(15), dt.time(20), 180, 60, False)
    winter = selectors.participation_rule_for(ngrid, dt.date(2027, 1, 5))
    assert (winter.window_start, winter.max_events_per_season) == (dt.time(14), 5)
    assert selectors.participation_rule_for(ngrid, dt.date(2027, 6, 1)).window_start == dt.time(15)

    alliant = programs["alliant-smart-hours"]
    seasonal = alliant.incentive_rules.get(kind="seasonal")
    assert (seasonal.amount, seasonal.max_opt_outs) == (Decimal("25"), 3)
    assert alliant.participation_rules.get(effective_from=dt.date(2026, 1, 1)).opt_out_allowance_count == 3

    austin = programs["austin-energy-power-partner"]
    assert austin.incentive_rules.get(kind="seasonal").season_enrollment == "at_season_end"
    assert programs["sce-smart-energy-program"].incentive_rules.get(kind="seasonal").season_enrollment == "any"

    partner = programs["pge-or-energy-partner-smart-thermostat"]
    assert partner.incentive_rules.get(kind="seasonal").min_participation_share == Decimal("0.5")
    assert partner.eligible_customer_classes == ["small_commercial"]

    ev = programs["eversource-ct-ev-managed-charging"]
    assert sorted(ev.incentive_rules.filter(kind="monthly").values_list("amount", "requires_no_skipped_event")) == [
        (Decimal("10"), False), (Decimal("20"), True)]
    assert ev.eligible_device_types == ["ev_charger"]

    pge_battery = programs["pge-or-smart-battery-pilot"]
    assert pge_battery.incentive_rules.get(kind="performance_kwh").amount == Decimal("1.7")
    sce = programs["sce-smart-energy-program"]
    assert selectors.participation_rule_for(sce, dt.date(2026, 7, 1)).min_notice_minutes == 20
    ct = programs["ct-energy-storage-solutions"]
    assert sorted(ct.incentive_rules.values_list("season__name", "amount")) == [
        ("summer 2026", Decimal("200")), ("winter 2026", Decimal("25"))]
    assert ct.seasons.get(name="winter 2026").end_date == dt.date(2027, 3, 31)


def test_window_events_pass_each_programs_rule(facts, now):
    """A one-hour weekday event at the start of each published window passes that program's rule."""
    for f in facts:
        program = build(f, now)
        rule = selectors.participation_rule_for(program, dt.date(2026, 7, 15))
        tz = ZoneInfo(program.time_zone)
        start_time = rule.window_start or dt.time(15)
        start = dt.datetime.combine(dt.date(2026, 7, 15), start_time, tzinfo=tz)  # a Wednesday
        violations = check_event_against_rule(rule, start_local=start, end_local=start + dt.timedelta(hours=1),
                                              is_holiday=False, notice_minutes=24 * 60)
        assert violations == [], (program.code, violations)
