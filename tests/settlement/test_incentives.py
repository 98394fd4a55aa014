"""Pure incentive arithmetic (no database): hand-computed dollars."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm.base.money import round_money
from settlement import incentives as inc


def rule(kind, **kw):
    return inc.RuleSpec(rule_id=1, kind=kind, **kw)


def test_proration_fraction():
    assert inc.proration_fraction(60, 180) == D("0.333333")
    assert inc.proration_fraction(200, 180) == D("1.000000")
    assert inc.proration_fraction(0, 0) == D(0)


def test_per_event_is_prorated_and_non_responders_earn_nothing():
    r = rule(inc.K_PER_EVENT, amount=D("10"))
    partial = inc.EventOutcome(kwh_avoided=D(0), fraction=D("0.333333"), opted_out=True)
    assert round_money(inc.event_components(partial, [r])[0].amount) == D("3.33")
    silent = inc.EventOutcome(kwh_avoided=D(0), fraction=D(1), opted_out=False, responded=False)
    assert inc.event_components(silent, [r])[0].amount == 0
    per_kw = rule(inc.K_PER_EVENT, basis=inc.B_PER_KW_ENROLLED, amount=D("2"))
    full = inc.EventOutcome(kwh_avoided=D(0), fraction=D(1), opted_out=False,
                            capacity=inc.EnrolledCapacity(1, D("13.5"), D(0)))
    assert inc.event_components(full, [per_kw])[0].amount == D("27.0")


def test_performance_kwh_flat_negative_and_charged():
    r = rule(inc.K_PERFORMANCE_KWH, basis=inc.B_PER_KWH, amount=D("1.25"))
    assert inc.event_components(inc.EventOutcome(D("4.5"), D(1), False), [r])[0].amount == D("5.625")
    negative = inc.EventOutcome(D("-2"), D(1), False)
    assert inc.event_components(negative, [r])[0].amount == 0
    charged = inc.EventOutcome(D("-2"), D(1), False, charges_negative_performance=True)
    assert inc.event_components(charged, [r])[0].amount == D("-2.50")


def test_price_set_sums_interval_kwh_times_price_and_names_a_missing_price():
    t0 = dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC)
    t1, t2 = t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)
    r = rule(inc.K_PERFORMANCE_KWH, basis=inc.B_PRICE_SET, prices={t0: D("0.5"), t1: D("1.0"), t2: D("3.0")},
             price_set_name="DA")
    outcome = inc.EventOutcome(D("3"), D(1), False, interval_kwh=[(t0, D("1")), (t1, D("1.5")), (t2, D("0.5"))])
    assert inc.event_components(outcome, [r])[0].amount == D("3.50")
    # A 15-minute interval takes the price of the hour it falls in.
    quarter = inc.EventOutcome(D("1"), D(1), False, interval_kwh=[(t1 + dt.timedelta(minutes=45), D("1"))])
    assert inc.event_components(quarter, [r])[0].amount == D("1.0")
    with pytest.raises(inc.MissingPrice, match="2026-07-16T02:00:00"):
        inc.event_components(inc.EventOutcome(D("1"), D(1), False, interval_kwh=[(t2 + dt.timedelta(hours=1),
                                                                                    D("1"))]), [r])


def test_opt_out_penalty_and_forfeit_event():
    perf = rule(inc.K_PERFORMANCE_KWH, amount=D("1"))
    penalty = rule(inc.K_OPT_OUT_PENALTY, amount=D("5"), opt_out_consequence=inc.C_PENALTY)
    forfeit = rule(inc.K_OPT_OUT_PENALTY, opt_out_consequence=inc.C_FORFEIT_EVENT)
    opted = inc.EventOutcome(D("3"), D("0.5"), True)
    comps = inc.event_components(opted, [perf, penalty, forfeit])
    assert [(c.kind, c.amount) for c in comps] == [("performance_kwh", 0), ("opt_out_penalty", D("-5"))]
    stayed = inc.EventOutcome(D("3"), D(1), False)
    assert [c.amount for c in inc.event_components(stayed, [perf, penalty, forfeit])] == [D("3")]


def ev(hours, not_opted=None, kw=None, opted=False):
    return inc.SeasonEvent(1, D(hours), D(hours if not_opted is None else not_opted), opted, kw)


def test_participation_share_and_seasonal_threshold():
    # 3 h + 3 h (opted out after 1 h) + 2 h: (3 + 1 + 2) / 8 = 75 %.
    events = [ev(3), ev(3, 1, opted=True), ev(2)]
    assert inc.participation_share(events) == D("0.75")
    at_75 = rule(inc.K_SEASONAL, amount=D("60"), min_participation_share=D("0.75"))
    at_80 = rule(inc.K_SEASONAL, amount=D("60"), min_participation_share=D("0.80"))
    assert inc.seasonal_component(at_75, events, inc.EnrolledCapacity()).amount == D("60")
    comp = inc.seasonal_component(at_80, events, inc.EnrolledCapacity())
    assert comp.amount == 0 and "75.0% of event hours not opted out < minimum 80.0%" in comp.description
    max_one = rule(inc.K_SEASONAL, amount=D("25"), max_opt_outs=0)
    assert inc.seasonal_component(max_one, events, inc.EnrolledCapacity()).amount == 0


def test_top_percent_average():
    values = [D(3), D(1), D(2), D(0)]
    assert inc.top_percent_average(values, D(50)) == (D("2.5"), 2)
    assert inc.top_percent_average(values, D(10)) == (D(3), 1)  # ceil(0.4) = 1 event at least
    assert inc.top_percent_average(values, None) == (D("1.5"), 4)
    assert inc.top_percent_average([], D(50)) == (D(0), 0)


def test_performance_kw_counts_opted_out_events_as_zero():
    """Issue 16 changed this rule: an event opted out part-way counts its prorated kW (it counted 0 before); only an
    event opted out before it began counts 0 (or is left out).

    Events: 4 kW; opted out after 1 h of 3 h with 2 kW prorated over the window; 3 kW; no data; opted out before it
    began (0 h participated). All events, counting zero: (4 + 2 + 3 + 0) / 4 = 2.25 kW x $275 = $618.75.
    Left out: top 50 % of (4, 2, 3) = ceil(1.5) = 2 events: (4 + 3) / 2 = 3.5 kW x $275 = $962.50.
    """
    events = [ev(3, kw=D("4")), ev(3, 1, kw=D("2"), opted=True), ev(3, kw=D("3")), ev(3, kw=None),
              ev(3, 0, kw=D("0"), opted=True)]
    r = rule(inc.K_PERFORMANCE_KW, amount=D("275"), top_percent_events=D(100))
    comp = inc.performance_kw_component(r, events)
    assert round_money(comp.amount) == D("618.75")
    assert comp.quantity == D("2.25") and "(4 of 4)" in comp.description
    skip_opted = rule(inc.K_PERFORMANCE_KW, amount=D("275"), opted_out_counts_zero=False,
                      top_percent_events=D(50))
    assert inc.performance_kw_component(skip_opted, events).amount == D("962.50")


def test_performance_kw_prorates_a_battery_that_opted_out_mid_event():
    """A battery discharging 6 kW for 2 h of a 3 h event, then opting out: kWh before the opt-out = 6 x 2 = 12 kWh;
    the event's kW = 12 kWh / 3 h = 4 kW (the Efficiency Maine rule: prorated over the event length, not 6 kW over
    the hours delivered). With a second, full event at 5 kW: season average (4 + 5) / 2 = 4.5 kW x $200/kW = $900.
    The old rule counted the opted-out event 0 kW: (0 + 5) / 2 x $200 = $500."""
    events = [ev(3, 2, kw=D("4.0000"), opted=True), ev(3, kw=D("5"))]
    r = rule(inc.K_PERFORMANCE_KW, amount=D("200"))
    comp = inc.performance_kw_component(r, events)
    assert comp.amount == D("900") and comp.quantity == D("4.5")
    assert not events[0].opted_out_before_start and ev(3, 0, opted=True).opted_out_before_start


def test_cap_adjustment():
    assert inc.cap_adjustment(prior_net=D("80"), this_net=D("50"), cap=D("100")) == D("-30")
    assert inc.cap_adjustment(prior_net=D("0"), this_net=D("50"), cap=D("100")) == 0
    assert inc.cap_adjustment(prior_net=D("120"), this_net=D("10"), cap=D("100")) == D("-10")  # never more
    assert inc.cap_adjustment(prior_net=D("120"), this_net=D("-5"), cap=D("100")) == 0


# ------------------------------------------------------------------ batch == scalar
_STARTS = [dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(3)]
Decimal, ZERO = D, D(0)
_dec4 = st.decimals(min_value=-50, max_value=50, places=4, allow_nan=False, allow_infinity=False)
_outcome = st.tuples(_dec4, st.decimals(min_value=0, max_value=1, places=6), st.booleans(), st.booleans(),
                     st.sampled_from([inc.EnrolledCapacity(), inc.EnrolledCapacity(2, Decimal("7.5"), Decimal("27")),
                                      inc.EnrolledCapacity(1, Decimal("5.125"), Decimal("0"))]),
                     st.lists(st.decimals(min_value=-9, max_value=9, places=6), min_size=0, max_size=3))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_outcome, min_size=1, max_size=8), charges=st.booleans(), missing_last=st.booleans(),
       rule_set=st.sampled_from(["kwh", "price", "per_event", "penalties"]))
def test_batch_components_equal_the_one_participation_function(rows, charges, missing_last, rule_set):
    prices = {s: Decimal(p) for s, p in zip(_STARTS, ["0.50000", "1.25000", "3.00000"], strict=True)}
    if missing_last:
        del prices[_STARTS[-1]]
    rules = {
        "kwh": [inc.RuleSpec(1, inc.K_PERFORMANCE_KWH, inc.B_PER_KWH, Decimal("1.7"))],
        "price": [inc.RuleSpec(2, inc.K_PERFORMANCE_KWH, inc.B_PRICE_SET, ZERO, prices=prices, price_set_name="DA"),
                  inc.RuleSpec(3, inc.K_PER_EVENT, inc.B_PER_DEVICE, Decimal("10"))],
        "per_event": [inc.RuleSpec(4, inc.K_PER_EVENT, inc.B_PER_KW_ENROLLED, Decimal("2.5")),
                      inc.RuleSpec(5, inc.K_PERFORMANCE_KWH, inc.B_PER_KWH, Decimal("0.333"))],
        "penalties": [inc.RuleSpec(6, inc.K_PERFORMANCE_KWH, inc.B_PER_KWH, Decimal("1.25")),
                      inc.RuleSpec(7, inc.K_OPT_OUT_PENALTY, amount=Decimal("5"), opt_out_consequence=inc.C_PENALTY),
                      inc.RuleSpec(8, inc.K_OPT_OUT_PENALTY, opt_out_consequence=inc.C_FORFEIT_EVENT)],
    }[rule_set]
    outcomes = inc.EventOutcomes(
        kwh_avoided=[r[0] for r in rows], fraction=[r[1] for r in rows], opted_out=[r[2] for r in rows],
        responded=[r[3] for r in rows], capacity=[r[4] for r in rows], interval_starts=_STARTS,
        interval_kwh=[r[5] for r in rows], charges_negative_performance=charges)
    columns, errors = inc.event_components_batch(outcomes, rules)
    for k, r in enumerate(rows):
        one = inc.EventOutcome(kwh_avoided=r[0], fraction=r[1], opted_out=r[2], responded=r[3],
                               interval_kwh=list(zip(_STARTS, r[5], strict=False)), capacity=r[4],
                               charges_negative_performance=charges)
        try:
            expected, error = inc.event_components(one, rules), None
        except inc.MissingPrice as exc:
            expected, error = [], str(exc)
        assert (None if errors[k] is None else str(errors[k])) == error
        if error is None:
            assert [c for c in (col.component(k) for col in columns) if c is not None] == expected


def test_cap_adjustment_gives_back_earlier_cap_lines_when_a_correction_brings_the_season_under_the_cap():
    # Earlier: $80 earned, cap line -$20 (net $60). A correction of -$10: season $70 earned, still over $60: +$10.
    assert inc.cap_adjustment(prior_net=D("60"), this_net=D("-10"), cap=D("60"), prior_capped=D("-20")) == D("10")
    # A correction of -$30: $50 earned, under the cap: everything the cap took comes back (+$20), never more.
    assert inc.cap_adjustment(prior_net=D("60"), this_net=D("-30"), cap=D("60"), prior_capped=D("-20")) == D("20")
    # No earlier cap line: nothing to give back.
    assert inc.cap_adjustment(prior_net=D("40"), this_net=D("-10"), cap=D("60")) == 0


def test_season_enrollment_share_by_the_enrollments_dates():
    """Season June 1 - September 30 2026 (122 days). An enrollment from May 20 ended on August 15 (its first day no
    longer enrolled): June 1 - August 14 = 75 days enrolled in the season."""
    season = {"season_start": dt.date(2026, 6, 1), "season_end": dt.date(2026, 9, 30)}
    left = inc.EnrollmentDates(**season, effective=dt.date(2026, 5, 20), end=dt.date(2026, 8, 15))
    stays = inc.EnrollmentDates(**season, effective=dt.date(2026, 6, 15))
    whole = inc.EnrollmentDates(**season, effective=dt.date(2026, 1, 1), end=dt.date(2026, 10, 1))
    assert inc.season_enrollment_share(inc.E_ANY, left) == (D(1), "")
    assert inc.season_enrollment_share(inc.E_AT_SEASON_END, left) == (D(0), (
        "Not paid: no longer enrolled from 2026-08-15, before the season's end (2026-09-30); paid to enrollments "
        "still enrolled at the season's end"))
    assert inc.season_enrollment_share(inc.E_AT_SEASON_END, stays) == (D(1), "")
    assert inc.season_enrollment_share(inc.E_AT_SEASON_END, whole) == (D(1), "")  # ended the day after the season
    assert inc.season_enrollment_share(inc.E_WHOLE_SEASON, whole) == (D(1), "")
    share, why = inc.season_enrollment_share(inc.E_WHOLE_SEASON, stays)  # June 15 - September 30: 108 days
    assert share == 0 and why.startswith("Not paid: enrolled 108 of the season's 122 days")
    share, why = inc.season_enrollment_share(inc.E_PRORATED, left)
    assert (share, why) == (D(75) / D(122), "prorated: enrolled 75 of the season's 122 days")
    assert inc.season_enrollment_share(inc.E_PRORATED, whole) == (D(1), "")
    with pytest.raises(ValueError, match="unknown season enrollment requirement 'bogus'"):
        inc.season_enrollment_share("bogus", left)
    # $25: not paid at the season's end, prorated 25 x 75 / 122 = $15.368... -> $15.37 once rounded.
    prorated = rule(inc.K_SEASONAL, amount=D("25"), season_enrollment=inc.E_PRORATED)
    comp = inc.seasonal_component(prorated, [ev(3)], inc.EnrolledCapacity(), enrollment=left)
    assert round_money(comp.amount) == D("15.37")
    assert comp.description == ("Seasonal incentive (100.0% of event hours not opted out), prorated: enrolled 75 of "
                                "the season's 122 days")
    assert inc.seasonal_component(prorated, [ev(3)], inc.EnrolledCapacity()).amount == D("25")  # no dates: in full


def test_a_performance_line_reads_as_its_amount():
    """A bill-credit line's quantity is the one its amount was worked from: 0.104 kWh x $1.25 = $0.13 (it read
    "0.10 kWh avoided x $1.25/kWh" on a $0.13 line)."""
    r = rule(inc.K_PERFORMANCE_KWH, basis=inc.B_PER_KWH, amount=D("1.25"))
    one = inc.event_components(inc.EventOutcome(D("0.1040"), D(1), False), [r])[0]
    assert (one.description, round_money(one.amount)) == ("0.104 kWh avoided x $1.25/kWh", D("0.13"))
    columns, _ = inc.event_components_batch(inc.EventOutcomes(
        kwh_avoided=[D("0.1040"), D("4.5000")], fraction=[D(1), D(1)], opted_out=[False, False],
        responded=[True, True], capacity=[None, None]), [r])
    assert [columns[0].component(k).description for k in (0, 1)] == [
        "0.104 kWh avoided x $1.25/kWh", "4.50 kWh avoided x $1.25/kWh"]
    kw = rule(inc.K_PERFORMANCE_KW, amount=D("100"))
    events = [inc.SeasonEvent(event_id=i, hours=D(3), hours_not_opted_out=D(3), opted_out=False, kw_drop=D(v))
              for i, v in enumerate(["1", "2", "2"])]
    line = inc.performance_kw_component(kw, events)
    assert line.description.startswith("Average kW drop of all events (3 of 3) = 1.6667 kW x $100.00/kW")
