"""``manage.py baseline``: one service point's baseline for one event from a CSV, for analysts and disputes.

Same code path as settlement (``settlement.baselines.baseline_for_event``). The CSV has a header with
``timestamp`` (ISO 8601 with offset, interval start) and either ``kw`` (average demand) or ``kwh``. Refused with
the line and column, as the meter loads refuse them: a file that is not UTF-8, a value that is not a number (the text
``NaN``, ``1_5``; leave the field empty for a missing reading) or not finite, a time outside ``CPM_METER_YEARS``.
The readable summary shows interval starts in ``--tz`` ("2026-11-01 01:00 PST"); ``--json`` gives them in UTC.
Example::

    python manage.py baseline --csv meter.csv --tz America/Los_Angeles \\
        --event-start 2026-07-15T16:00-07:00 --event-end 2026-07-15T18:00-07:00 --method caiso-10-in-10 --json
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cpm.base.numbers import to_float
from cpm.base.timeutils import format_local
from settlement.baselines import PRESETS, IntervalSeries, baseline_for_event, resolve_params, series_from_points
from settlement.meterdata.checks import YEARS


def _datetime(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"{name}: not an ISO 8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise CommandError(f"{name}: must include a UTC offset: {value!r}")
    low, high = _years()
    if not low <= parsed.year <= high:  # year 1 east of UTC, or 9999, overflowed in the engine
        raise CommandError(f"{name}: {value.strip()} is outside the years {low}-{high}")
    return parsed


def _years() -> tuple[int, int]:
    """The years an interval may start in: the meter loads' (``CPM_METER_YEARS``)."""
    return tuple(getattr(settings, "CPM_METER_YEARS", YEARS))


def _value(raw: str, where: str) -> float:
    """A reading (kWh or kW): empty = missing (NaN); refused in words as the meter loads refuse it: not a number
    (the text NaN, a digit separator), an infinity."""
    if not raw:
        return math.nan
    try:
        value = to_float(raw)
    except ValueError as exc:
        raise CommandError(f"{where}: not a number: {raw[:40]!r}") from exc
    if math.isnan(value):
        raise CommandError(f"{where}: not a number: {raw[:40]!r} (leave the field empty for a missing reading)")
    if math.isinf(value):
        raise CommandError(f"{where}: must be a finite number, not {raw[:40]!r}")
    return value


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not an ISO date: {value!r}") from exc


def read_csv(path: str):
    """(starts, kwh, interval_minutes or None) from the CSV; raises ``CommandError`` naming the line."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CommandError(f"--csv: cannot open {path}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CommandError(f"--csv: line {line}: not UTF-8 text (save the file as UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "timestamp" not in fields or not ({"kw", "kwh"} & set(fields)):
        raise CommandError("--csv: the header needs 'timestamp' and 'kw' or 'kwh'")
    reader.fieldnames = fields
    column = "kwh" if "kwh" in fields else "kw"
    starts, values = [], []
    for row in reader:
        line = reader.line_num
        starts.append(_datetime(row["timestamp"] or "", f"line {line}: timestamp"))
        values.append(_value((row[column] or "").strip(), f"line {line}: {column}"))
    if not starts:
        raise CommandError("--csv: no readings")
    return starts, values, column


class Command(BaseCommand):
    help = "Compute an X-of-Y baseline with day-of adjustment for one event from a CSV of interval readings."

    def add_arguments(self, parser):
        parser.add_argument("--csv", required=True, help="CSV with timestamp and kw or kwh columns.")
        parser.add_argument("--tz", required=True, help="IANA time zone of the program (local days).")
        parser.add_argument("--event-start", required=True)
        parser.add_argument("--event-end", required=True)
        parser.add_argument("--method", default=None, choices=[*PRESETS, "custom"],
                            help="Preset (default caiso-auto, or custom when only flags are given).")
        parser.add_argument("--x", type=int)
        parser.add_argument("--y", type=int)
        parser.add_argument("--selection", choices=["most_recent", "highest"])
        parser.add_argument("--day-type", choices=["weekday", "weekend_holiday", "auto"])
        parser.add_argument("--lookback-days", type=int)
        parser.add_argument("--low-usage-threshold", type=float)
        parser.add_argument("--adjustment", choices=["none", "multiplicative", "additive"])
        parser.add_argument("--adjustment-hours", type=float)
        parser.add_argument("--adjustment-gap-hours", type=float)
        parser.add_argument("--adjustment-cap", help="LOW,HIGH (either may be empty) or 'none'.")
        parser.add_argument("--holiday", action="append", default=[], type=_date, help="Holiday date (repeatable).")
        parser.add_argument("--exclude-day", action="append", default=[], type=_date,
                            help="Day flagged abnormal/outage (repeatable).")
        parser.add_argument("--event-day", action="append", default=[], type=_date,
                            help="Day with another event for this service point (repeatable).")
        parser.add_argument("--json", action="store_true", help="Print JSON (default: a readable summary).")

    def handle(self, *args, **opts):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(opts["tz"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CommandError(f"--tz: unknown IANA time zone {opts['tz']!r}") from exc
        overrides = {}
        for flag in ("x", "y", "selection", "day_type", "lookback_days", "low_usage_threshold", "adjustment",
                     "adjustment_hours", "adjustment_gap_hours"):
            if opts[flag] is not None:
                overrides[flag] = opts[flag]
        if opts["adjustment_cap"] is not None:
            overrides["adjustment_cap"] = _cap(opts["adjustment_cap"])
        method = opts["method"] or ("custom" if overrides else "caiso-auto")
        try:
            params = resolve_params(method, overrides)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        starts, values, column = read_csv(opts["csv"])
        try:
            series = series_from_points(starts, values)
            if column == "kw":  # average demand -> energy per interval
                series = IntervalSeries(start=series.start, interval_minutes=series.interval_minutes,
                                        kwh=series.kwh * series.interval_minutes / 60)
            result = baseline_for_event(series=series, tz=tz,
                                        event_start=_datetime(opts["event_start"], "--event-start"),
                                        event_end=_datetime(opts["event_end"], "--event-end"), params=params,
                                        holidays=opts["holiday"], event_days=opts["event_day"],
                                        abnormal_days=opts["exclude_day"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        data = result.as_json()
        if opts["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(f"{data['status']} {data['reason']}".strip())
        self.stdout.write(f"selected days: {', '.join(data['selected_days']) or '-'}")
        for e in data["excluded_days"]:
            self.stdout.write(f"  excluded {e['day']}: {e['reason']}")
        self.stdout.write(f"adjustment: {data['adjustment']}")
        for i, interval in zip(data["intervals"], result.intervals, strict=True):
            # people read the program's wall clock (01:00 PDT and 01:00 PST on the autumn day), not UTC
            self.stdout.write(f"{format_local(interval['start'], tz)}  baseline {i['baseline_kw']} kW  adjusted "
                              f"{i['adjusted_baseline_kw']} kW  actual {i['actual_kw']} kW  reduction "
                              f"{i['reduction_kwh']} kWh")
        self.stdout.write(f"totals: {data['totals']}")


def _cap(text: str):
    if text.strip().lower() == "none":
        return None
    parts = text.split(",")
    if len(parts) != 2:
        raise CommandError("--adjustment-cap: expected LOW,HIGH")
    try:
        return tuple(float(p) if p.strip() else None for p in parts)
    except ValueError as exc:
        raise CommandError(f"--adjustment-cap: not numbers: {text!r}") from exc
