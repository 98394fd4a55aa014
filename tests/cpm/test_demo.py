"""The demo end to end (SQLite, eager tasks, --quick), checked by an independent recomputation of the credits."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from cpm.base.paths import green_button_dir
from cpm.demo import fleet
from cpm.demo import simulation as sim
from cpm.demo.check import caiso_10_in_10, check_demo, zero_days

PT = ZoneInfo("America/Los_Angeles")


def run_demo(tmp_path: Path, *extra: str) -> str:
    out = StringIO()
    call_command("demo", "--quick", "--ci-check", "--out-dir", str(tmp_path), *extra, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_demo_season_end_to_end_and_the_credits_agree(tmp_path):
    from events.models import Event, OptOut, Reservation
    from settlement.models import BillCreditExport, CustomerSettlement, EventSettlement

    text = run_demo(tmp_path)
    assert "Independent check PASSED" in text and "demo check passed" in text
    real = bool(fleet.find_green_button_files(green_button_dir()))
    assert ("REAL interval data" in text) == real
    # Refusals show their reasons.
    for code in ("rate_code_not_eligible", "life_support_excluded", "answer_not_qualifying",
                 "device_enrolled_by_other_account", "already_enrolled"):
        assert f"[{code}]" in text
    assert Event.objects.filter(status="completed").count() == 7  # 3 thermostat + 2 battery + 2 peak-time rebate
    assert Reservation.objects.filter(decision="offline").exists()
    assert Reservation.objects.filter(decision="unavailable").count() == 1
    assert OptOut.objects.exists()
    assert not EventSettlement.objects.filter(status="pending").exists()
    assert set(CustomerSettlement.objects.values_list("status", flat=True)) == {"exported"}
    export = BillCreditExport.objects.get()
    path = tmp_path / export.file_name
    rows = list(csv.DictReader(path.open()))
    assert sum(Decimal(r["amount"]) for r in rows) == export.total_amount > 0
    # Every thermostat customer got the $75 enrollment bonus in the May billing period.
    bonus = [r for r in rows if r["line_code"] == "DRBN"]
    assert bonus and {r["amount"] for r in bonus} == {"75.00"} and {r["period_start"] for r in bonus} == {
        "2011-05-01"}
    assert (tmp_path / "report.html").read_text().count("<svg") >= 6  # 5 event charts + credits chart

    # The check is not a rubber stamp: one cent changed in the file is reported, naming the account.
    rows[0]["amount"] = f"{Decimal(rows[0]['amount']) + Decimal('0.01'):.2f}"
    tampered = tmp_path / "tampered.csv"
    with tampered.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = check_demo(tampered)
    assert len(report.errors) == 1 and rows[0]["account_number"] in report.errors[0]

    # Customer messages: one outbox file per message sent, counted by kind in the summary; the peak-time rebate's
    # customer who asked for no messages was never notified, so its participations were released, not settled.
    from cpm.notifications.models import Message
    from events.models import Participation

    sent = Message.objects.filter(status="sent")
    assert len(list((tmp_path / "outbox").rglob("*.*"))) == sent.count() > 0
    for kind in ("enrollment_approved", "event_notice", "reminder", "event_summary", "season_statement"):
        assert sent.filter(kind=kind).exists(), kind
    assert f"Event notice                {sent.filter(kind='event_notice').count():2d}  (sent" in text
    ptr = Participation.objects.filter(event__program__code="pge-or-peak-time-rebates")
    silent = ptr.filter(status="cancelled")
    assert silent.count() == 2 and not silent.filter(settlement__isnull=False).exists()
    assert not sent.filter(event__program__code="pge-or-peak-time-rebates",
                           customer_id=silent.first().enrollment.account.customer_id).exists()
    # The check is not a rubber stamp for the peak-time rebate either: settling an un-notified customer is reported.
    silent.filter(pk=silent.first().pk).update(status="dispatched")
    assert any("never notified" in e for e in check_demo(path).errors)


@pytest.mark.django_db(transaction=True)
def test_demo_without_green_button_files_uses_a_labelled_synthetic_fleet(tmp_path):
    empty = tmp_path / "no-files"
    empty.mkdir()
    text = run_demo(tmp_path, "--greenbutton-dir", str(empty))
    assert "SYNTHETIC interval data" in text and "Independent check PASSED" in text
    assert "DEMO-SY-0001" in text and "DEMO-GB-" not in text


@pytest.mark.django_db(transaction=True)
def test_demo_refuses_to_erase_a_database_it_did_not_create(tmp_path):
    get_user_model().objects.create_user("alice", password="x")
    with pytest.raises(CommandError, match="did not create"):
        call_command("demo", "--quick", "--out-dir", str(tmp_path), stdout=StringIO())
    assert get_user_model().objects.filter(username="alice").exists()


def _flat_load(day: dt.date, *, days: int, kwh: float) -> dict[int, float]:
    load = {}
    for back in range(days + 1):
        d = day - dt.timedelta(days=back)
        for h in range(24):
            load[int(dt.datetime(d.year, d.month, d.day, h, tzinfo=PT).timestamp())] = kwh
    return load


def test_check_baseline_by_hand():
    """CAISO 10-in-10 of the check on numbers worked by hand."""
    day = dt.date(2011, 7, 13)  # a Wednesday
    load = _flat_load(day, days=50, kwh=1.0)
    stamp = lambda d, h: int(dt.datetime(d.year, d.month, d.day, h, tzinfo=PT).timestamp())  # noqa: E731
    for h in (11, 12, 13):  # adjustment hours (3 hours before 15:00, the hour just before excluded)
        load[stamp(day, h)] = 1.1
    for h in (15, 16, 17):
        load[stamp(day, h)] = 0.6
    excluded = dt.date(2011, 7, 12)  # an earlier event day: its 5 kWh hours must not enter the baseline
    for h in range(24):
        load[stamp(excluded, h)] = 5.0
    start = dt.datetime(2011, 7, 13, 15, tzinfo=PT)
    end = start + dt.timedelta(hours=3)
    # baseline 1.0, adjustment x1.1 -> 1.1; 3 h x (1.1 - 0.6) = 1.5 kWh
    assert caiso_10_in_10(load, event_start=start, event_end=end, tz=PT, excluded_days={excluded},
                          counted_until=end) == pytest.approx(1.5)
    # An opt-out at 17:20 counts the two hours that ended before it.
    assert caiso_10_in_10(load, event_start=start, event_end=end, tz=PT, excluded_days={excluded},
                          counted_until=start + dt.timedelta(minutes=140)) == pytest.approx(1.0)
    # The adjustment is limited to +20 %.
    for h in (11, 12, 13):
        load[stamp(day, h)] = 2.0
    assert caiso_10_in_10(load, event_start=start, event_end=end, tz=PT, excluded_days={excluded},
                          counted_until=end) == pytest.approx(3 * (1.2 - 0.6))


def test_check_net_load_below_zero_and_zero_days_by_hand():
    """Issue 16 rules in the check. Net load 1.0 kW on every day; in the three event hours -0.5 kW (exporting):
    baseline 1.0, adjustment 1.0: 3 x (1.0 - (-0.5)) = 4.5 kWh; not counting below zero net load: the actual counted
    is max(-0.5, min(1.0, 0)) = 0: 3 x 1.0 = 3.0 kWh. A local day whose hours all read 0 is a zero day."""
    day = dt.date(2011, 7, 13)
    load = _flat_load(day, days=50, kwh=1.0)
    stamp = lambda d, h: int(dt.datetime(d.year, d.month, d.day, h, tzinfo=PT).timestamp())  # noqa: E731
    for h in (15, 16, 17):
        load[stamp(day, h)] = -0.5
    start = dt.datetime(2011, 7, 13, 15, tzinfo=PT)
    end = start + dt.timedelta(hours=3)
    assert caiso_10_in_10(load, event_start=start, event_end=end, tz=PT, excluded_days=set(),
                          counted_until=end) == pytest.approx(4.5)
    assert caiso_10_in_10(load, event_start=start, event_end=end, tz=PT, excluded_days=set(), counted_until=end,
                          below_zero_counts=False) == pytest.approx(3.0)
    outage = dt.date(2011, 7, 11)
    for h in range(24):
        load[stamp(outage, h)] = 0.0
    assert zero_days(load, PT) == {outage}


def test_hot_days_rank_days_by_the_load_in_the_best_window():
    first = dt.date(2011, 7, 4)
    load = _flat_load(dt.date(2011, 7, 10), days=8, kwh=1.0)
    hot = int(dt.datetime(2011, 7, 6, 17, tzinfo=PT).timestamp())
    load[hot] = 9.0
    days = sim.hot_days(load, tz="America/Los_Angeles", first=first, last=dt.date(2011, 7, 8), window=(14, 18),
                        hours=2, count=1, allowed=lambda d: d.weekday() < 5)
    assert days == [sim.HotDay(dt.date(2011, 7, 6), 16, 2, 10.0)]


def test_device_response():
    start = dt.datetime(2011, 7, 6, 22, tzinfo=dt.UTC)
    fractions = sim.hour_fractions(start, start + dt.timedelta(hours=3), start + dt.timedelta(minutes=90))
    assert list(fractions.values()) == [1.0, 0.5, 0.0]
    assert sim.thermostat_load(2.0, capacity_kw=3.0, fraction=1.0) == 1.4  # 30 % of 2 kWh
    assert sim.thermostat_load(10.0, capacity_kw=2.0, fraction=0.5) == 9.0  # capacity 2 kW, half the hour
    assert sim.battery_discharge(capacity_kw=5.0, fraction=0.5) == 2.5


def test_the_check_shares_no_code_with_the_apps():
    """``cpm.demo.check`` reads stored rows through the apps' models and imports nothing else of theirs (no service,
    selector, baseline engine or incentive arithmetic) and nothing of ``cpm`` (no money helper)."""
    import ast

    import cpm.demo.check as check

    tree = ast.parse(Path(check.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    apps = ("programs", "devices", "enrollments", "events", "settlement", "cpm")
    from_apps = {m for m in imported if m.split(".")[0] in apps}
    assert from_apps and all(m.rsplit(".", 1)[-1] == "models" and not m.startswith("cpm.")
                             for m in from_apps), from_apps
