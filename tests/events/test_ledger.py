"""The reservation ledger's pure arithmetic (rule checks themselves are ``programs.rules``, tested there)."""

import datetime as dt

from events import ledger


def test_rotation_least_called_then_larger_capacity():
    order = ledger.rotation_order([(1, 3, 5.0), (2, 0, 1.0), (3, 0, 4.0), (4, 1, 9.0), (5, 0, 4.0)])
    assert order == [3, 5, 2, 4, 1]
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0), (2, 1.0)], 6.0) == {3, 5}
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0)], 4.0) == {3}


def test_season_usage_counts_an_event_once_and_leaves_out_this_event_and_other_seasons():
    summer = ledger.Period("Summer 2026", dt.date(2026, 6, 1), dt.date(2026, 9, 30))

    def ev(i, day, hours):
        start = dt.datetime(2026, day.month, day.day, 22, tzinfo=dt.UTC)
        return ledger.LedgerEvent(i, start, start + dt.timedelta(hours=hours), day, hours)

    a, b, c = ev(1, dt.date(2026, 6, 10), 2), ev(2, dt.date(2026, 6, 11), 3), ev(3, dt.date(2026, 7, 15), 1)
    spring = ev(4, dt.date(2026, 5, 20), 4)
    # Two devices of the participant in event 1, one opted out: the event counts once, as opted out.
    rows = [(a, False), (a, True), (b, False), (c, True), (spring, True)]
    assert ledger.season_usage(rows, season=summer, exclude_event_id=3) == ledger.SeasonUsage(1, 2.0, 5.0)
    assert ledger.season_usage(rows, season=summer, exclude_event_id=99) == ledger.SeasonUsage(2, 3.0, 6.0)
