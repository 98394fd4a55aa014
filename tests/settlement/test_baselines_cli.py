"""``manage.py baseline --json`` on a CSV fixture: same engine as settlement, hand-computed numbers."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

LA = ZoneInfo("America/Los_Angeles")


def write_csv(path, *, column="kw", minutes=60):
    # Jun 1 - Jul 15 2026, America/Los_Angeles. Weekdays 2 kW, except Jul 14 = 4 kW; weekends 8 kW.
    # Event day Wed Jul 15: 3 kW in 12:00-15:00 (adjustment window), 1 kW from 16:00.
    lines = [f"timestamp,{column}"]
    t = dt.datetime(2026, 6, 1, tzinfo=LA).astimezone(dt.UTC)
    end = dt.datetime(2026, 7, 16, tzinfo=LA).astimezone(dt.UTC)
    while t < end:
        local = t.astimezone(LA)
        day = local.date()
        if day == dt.date(2026, 7, 15) and 12 <= local.hour < 15:
            kw = 3.0
        elif day == dt.date(2026, 7, 15) and local.hour >= 16:
            kw = 1.0
        elif day.weekday() >= 5:
            kw = 8.0
        elif day == dt.date(2026, 7, 14):
            kw = 4.0
        else:
            kw = 2.0
        value = kw if column == "kw" else kw * minutes / 60
        lines.append(f"{local.isoformat()},{value}")
        t += dt.timedelta(minutes=minutes)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args) -> dict:
    out = StringIO()
    call_command("baseline", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_cli_caiso_10_in_10_json(tmp_path):
    csv_path = write_csv(tmp_path / "meter.csv")
    data = run_cli("--csv", str(csv_path), "--tz", "America/Los_Angeles", "--event-start", "2026-07-15T16:00-07:00",
                   "--event-end", "2026-07-15T18:00-07:00", "--method", "caiso-10-in-10",
                   "--holiday", "2026-07-03", "--exclude-day", "2026-07-13")
    # 10 weekdays: Jul 14 (4 kW) + 9 days at 2 kW (Jul 13 excluded, Jul 3 holiday) -> (4 + 18) / 10 = 2.2 kW.
    # Adjustment: 3 x 3.0 / (3 x 2.2) = 1.3636 -> capped at 1.2 -> 2.64 kW; actual 1 kW -> 1.64 kWh per hour.
    assert data["status"] == "OK"
    assert data["selected_days"][:3] == ["2026-07-14", "2026-07-10", "2026-07-09"]
    assert len(data["selected_days"]) == 10 and data["selected_days"][-1] == "2026-06-29"
    assert {"day": "2026-07-13", "reason": "abnormal"} in data["excluded_days"]
    assert {"day": "2026-07-03", "reason": "holiday"} in data["excluded_days"]
    assert data["adjustment"] == {"kind": "multiplicative", "raw": pytest.approx(3 / 2.2, abs=1e-6),
                                  "applied": 1.2}
    assert data["intervals"] == [
        {"start": "2026-07-15T23:00:00Z", "baseline_kw": pytest.approx(2.2), "adjusted_baseline_kw":
            pytest.approx(2.64), "actual_kw": 1.0, "reduction_kwh": pytest.approx(1.64)},
        {"start": "2026-07-16T00:00:00Z", "baseline_kw": pytest.approx(2.2), "adjusted_baseline_kw":
            pytest.approx(2.64), "actual_kw": 1.0, "reduction_kwh": pytest.approx(1.64)},
    ]
    assert data["totals"] == {"kwh_avoided": pytest.approx(3.28), "kw_drop_max": pytest.approx(1.64),
                              "kw_drop_min": pytest.approx(1.64), "kw_drop_avg": pytest.approx(1.64)}


def test_cli_flags_override_preset_kwh_column(tmp_path):
    csv_path = write_csv(tmp_path / "meter.csv", column="kwh", minutes=30)
    # caiso-10-in-10 overridden: X = 1 of Y = 2 highest, additive, 2-hour window ending at the event start.
    # Weekdays before Jul 15: Jul 14 (4 kW), Jul 13 (2 kW) -> highest = Jul 14: baseline 4 kW.
    # Additive over 14:00-16:00: actual (3 + 3 + 2 + 2)/4 = 2.5 (15:00-16:00 is 2 kW) - 4 = -1.5 kW -> 2.5 kW.
    data = run_cli("--csv", str(csv_path), "--tz", "America/Los_Angeles", "--event-start", "2026-07-15T23:00Z",
                   "--event-end", "2026-07-16T00:00Z", "--method", "caiso-10-in-10", "--x", "1", "--y", "2",
                   "--selection", "highest", "--adjustment", "additive", "--adjustment-hours", "2",
                   "--adjustment-gap-hours", "0", "--adjustment-cap", "none")
    assert data["selected_days"] == ["2026-07-14"]
    assert data["adjustment"] == {"kind": "additive", "raw": pytest.approx(-1.5), "applied": pytest.approx(-1.5)}
    assert [i["adjusted_baseline_kw"] for i in data["intervals"]] == pytest.approx([2.5, 2.5])
    assert [i["reduction_kwh"] for i in data["intervals"]] == pytest.approx([0.75, 0.75])  # (2.5 - 1) x 0.5 h
    assert data["totals"]["kwh_avoided"] == pytest.approx(1.5)


def test_cli_insufficient_and_errors(tmp_path):
    csv_path = write_csv(tmp_path / "meter.csv")
    data = run_cli("--csv", str(csv_path), "--tz", "America/Los_Angeles", "--event-start", "2026-06-03T16:00-07:00",
                   "--event-end", "2026-06-03T17:00-07:00", "--method", "caiso-10-in-10")
    assert data["status"] == "INSUFFICIENT_DATA"
    assert data["reason"] == "only 2 eligible weekday days in the 45-day lookback; 10 required"
    assert data["totals"]["kwh_avoided"] is None
    with pytest.raises(CommandError, match="--tz: unknown IANA time zone"):
        run_cli("--csv", str(csv_path), "--tz", "Mars/Base", "--event-start", "2026-07-15T16:00-07:00",
                "--event-end", "2026-07-15T17:00-07:00")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,kw\n2026-07-15T16:00-07:00,1\n2026-07-15T17:00,1\n")
    with pytest.raises(CommandError, match="line 3: timestamp: must include a UTC offset"):
        run_cli("--csv", str(bad), "--tz", "America/Los_Angeles", "--event-start", "2026-07-15T16:00-07:00",
                "--event-end", "2026-07-15T17:00-07:00")
    with pytest.raises(CommandError, match="x: must not exceed y"):
        run_cli("--csv", str(csv_path), "--tz", "America/Los_Angeles", "--event-start", "2026-07-15T16:00-07:00",
                "--event-end", "2026-07-15T17:00-07:00", "--x", "3", "--y", "2")


EVENT = ("--tz", "America/Los_Angeles", "--event-start", "2026-07-15T16:00-07:00", "--event-end",
         "2026-07-15T17:00-07:00")


@pytest.mark.parametrize(("content", "message"), [
    # A Latin-1 byte on line 3 was a UnicodeDecodeError traceback.
    ("timestamp,kwh\n2026-07-14T16:00:00-07:00,1\n2026-07-14T17:00:00-07:00,caf\xe9\n".encode("latin-1"),
     "--csv: line 3: not UTF-8 text (save the file as UTF-8)"),
    # Not a reading: the text NaN (leave the field empty), an infinity, a digit separator (float() read 15).
    (b"timestamp,kwh\n2026-07-14T16:00:00-07:00,1\n2026-07-14T17:00:00-07:00,nan\n",
     "line 3: kwh: not a number: 'nan' (leave the field empty for a missing reading)"),
    (b"timestamp,kwh\n2026-07-14T16:00:00-07:00,1e400\n", "line 2: kwh: must be a finite number, not '1e400'"),
    (b"timestamp,kw\n2026-07-14T16:00:00-07:00,-inf\n", "line 2: kw: must be a finite number, not '-inf'"),
    (b"timestamp,kwh\n2026-07-14T16:00:00-07:00,1_5\n", "line 2: kwh: not a number: '1_5'"),
    # Years the meter loads refuse: 'year 0 is out of range' / 'year 10000 is out of range' named no line.
    (b"timestamp,kwh\n2026-07-14T16:00:00-07:00,1\n0001-01-01T00:00:00+05:00,1\n",
     "line 3: timestamp: 0001-01-01T00:00:00+05:00 is outside the years 1900-2100"),
    (b"timestamp,kwh\n9999-12-31T23:00:00-07:00,1\n",
     "line 2: timestamp: 9999-12-31T23:00:00-07:00 is outside the years 1900-2100"),
])
def test_cli_bad_readings_are_errors_naming_the_line(tmp_path, content, message):
    path = tmp_path / "meter.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError) as exc:
        run_cli("--csv", str(path), *EVENT)
    assert str(exc.value) == message


def test_cli_event_times_outside_the_years_are_errors(tmp_path):
    """--event-start in year 1 (east of UTC) was an OverflowError traceback in the engine."""
    path = write_csv(tmp_path / "meter.csv")
    with pytest.raises(CommandError) as exc:
        run_cli("--csv", str(path), "--tz", "America/Los_Angeles", "--event-start", "0001-01-01T00:00+05:00",
                "--event-end", "0001-01-01T01:00+05:00")
    assert str(exc.value) == "--event-start: 0001-01-01T00:00+05:00 is outside the years 1900-2100"


def test_the_readable_summary_shows_interval_starts_in_the_programs_zone_on_an_autumn_dst_day(tmp_path):
    """The summary an analyst reads printed each interval start in UTC ('2026-11-01T08:00:00Z'), so on the 25-hour
    day the two 01:00 hours could not be told apart by anyone reading local time. Each start is the wall-clock time
    in --tz with the zone's abbreviation: 01:00 PDT, then 01:00 PST (4 real hours from 00:00 to 03:00)."""
    lines = ["timestamp,kw"]
    t = dt.datetime(2026, 9, 1, tzinfo=LA).astimezone(dt.UTC)
    end = dt.datetime(2026, 11, 2, tzinfo=LA).astimezone(dt.UTC)
    while t < end:
        local = t.astimezone(LA)
        weekend = local.weekday() >= 5
        kw = 1.0 if local.date() == dt.date(2026, 11, 1) and local.hour < 3 else (8.0 if weekend else 2.0)
        lines.append(f"{local.isoformat()},{kw}")
        t += dt.timedelta(hours=1)
    path = tmp_path / "meter.csv"
    path.write_text("\n".join(lines) + "\n")
    out = StringIO()
    # Sunday event 00:00-03:00 local: CAISO 4-in-4 on weekend days at 8 kW, no adjustment: 7 kWh avoided an hour.
    call_command("baseline", "--csv", str(path), "--tz", "America/Los_Angeles", "--event-start",
                 "2026-11-01T00:00-07:00", "--event-end", "2026-11-01T03:00-08:00", "--method", "caiso-auto",
                 "--adjustment", "none", stdout=out)
    text = out.getvalue()
    assert "selected days: 2026-10-31, 2026-10-25, 2026-10-24, 2026-10-18" in text
    starts = [line.split("  baseline")[0] for line in text.splitlines() if "  baseline " in line]
    assert starts == ["2026-11-01 00:00 PDT", "2026-11-01 01:00 PDT", "2026-11-01 01:00 PST", "2026-11-01 02:00 PST"]
    assert "Z " not in text and "T08:00" not in text
    assert "reduction 7.0 kWh" in text and "'kwh_avoided': 28.0" in text
