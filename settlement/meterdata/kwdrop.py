"""kW-drop files: the performance an aggregator or the utility's DERMS reports per event and service point (issue 18,
item 5), the measurement of programs whose ``performance_measurement`` is AGGREGATOR_REPORTED.

Layout (the "kW drop" file of Oracle Utilities' DERMS integration): comma-separated, UTF-8, one record per event and
service point, an optional header line first (recognised by its first field ``EventId``)::

    EventId,ProgramId,SPId,ActualStartTime,ActualEndTime,IntervalSize(Seconds),MaxKwDrop,KwDrop1,...,KwDropN
    12,BYOT-2026,SP-1001,2026-07-15T14:00:00-07:00,2026-07-15T16:00:00-07:00,900,2.50,1.50,2.00,,2.50,...

- ``EventId``: the cpm event's id, or its name when one event of the record's program has that name.
- ``ProgramId``: the program's code or id (the event must belong to it).
- ``SPId``: the service point's id as the utility knows it (``ServicePoint.service_point_id``) or its cpm id; it must
  have taken part in the event (a participation).
- ``ActualStartTime``, ``ActualEndTime``: ISO 8601 with an offset (``Z`` or ``-07:00``); a time without offset is
  read in the program's time zone (a time the clocks skip, or a repeated autumn time, is refused: give the offset).
- ``IntervalSize(Seconds)``: a whole number of seconds above 0 (at most a day). The span from start to end must be a
  whole number of intervals, and the record holds exactly that many KwDrop fields (trailing empty fields beyond
  them, padding to a header's width, are ignored).
- ``MaxKwDrop``: blank, or the largest KwDrop value to the precision written (``2.5`` matches 2.46 to 2.54).
- ``KwDrop<n>``: the kW drop in interval n (negative = load went up); **blank = the device did not report: missing
  data, never zero**.

Row errors (the record is not loaded; ``MeterDataLoad.errors`` ``{row: line, field: column, message}``): an unknown
program, event or service point, an event of another program, a service point without participation in the event,
a time that is not ISO 8601, end not after start, a span not covering a whole number of intervals, a KwDrop count
other than the intervals, a value that is not a finite decimal number, a kW beyond the plausible limit of the
service point's customer class (``CPM_MAX_KWH_PER_HOUR`` / ``_CI`` as kW, see ``checks``), MaxKwDrop inconsistent
with the values, a span not overlapping the event, a field with a NUL or over ``checks.MAX_FIELD`` characters, and
duplicates (a second record of the same event and service point: identical, the first is loaded; different, neither
is). An empty file, a header with other columns or bytes that are not UTF-8 fail the load (nothing written).

Storage (``ReportedKwDrop``): versioned per (event, service point). Loading a record equal to the current one writes
nothing ("unchanged"); a different one (a corrected file) writes version + 1 and keeps the old row as not current
("corrected"). The counts of the load (``readings_new`` etc.) are of records. The whole load is one transaction under
row locks of the events it names (two loads of one event run one after the other).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction

from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import DomainValidationError
from cpm.base.naturalkeys import lookup_many
from cpm.base.numbers import ascii_digits
from cpm.base.states import transition
from cpm.base.timeutils import WallClockError, format_local, local_wall_to_utc_strict, zone
from devices.models import ServicePoint
from events.models import Event, Participation
from programs.models import Program

from . import checks
from .csvreadings import CsvEncodingError, CsvFormatError
from .models import MeterDataLoad, ReportedKwDrop

COLUMNS = ("EventId", "ProgramId", "SPId", "ActualStartTime", "ActualEndTime", "IntervalSize(Seconds)", "MaxKwDrop")
FIXED = len(COLUMNS)
VALUE_COLUMN = "KwDrop"
MAX_INTERVAL_SECONDS = 86_400
MAX_INTERVALS = 10_000  # KwDrop values of one record (a day of 10-second intervals is beyond any event)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BOM = "\ufeff"


class KwDropFileError(CsvFormatError):
    """The kW-drop file as a whole is unreadable (empty, a header with other columns): nothing is loaded."""


@dataclass
class KwDropRecord:
    """A record checked and resolved: ready to store."""

    line: int
    event: Event
    service_point_id: int
    actual_start: dt.datetime
    actual_end: dt.datetime
    interval_seconds: int
    max_kw_drop: Decimal | None
    kw_drop: list[float | None] = field(default_factory=list)

    def same_as(self, stored: ReportedKwDrop) -> bool:
        """True when ``stored`` says the same (start, end, interval, MaxKwDrop, every value)."""
        return (stored.actual_start == self.actual_start and stored.actual_end == self.actual_end
                and stored.interval_seconds == self.interval_seconds and stored.max_kw_drop == self.max_kw_drop
                and list(stored.kw_drop) == self.kw_drop)


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvEncodingError(data[:exc.start].count(b"\n") + 1) from exc
    return text[1:] if text.startswith(_BOM) else text


def _header_key(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


def split_rows(data: bytes | str, errors) -> list[tuple[int, list[str]]]:
    """The file's records as ``(line, fields)`` (header and blank lines left out). ``errors``: an ``add(row, field,
    message, count=1)`` sink for lines that cannot be records (NUL, over-long field, too few fields). Raises
    ``KwDropFileError`` / ``CsvEncodingError`` for a file-level problem."""
    text = _decode(data) if isinstance(data, bytes) else data.removeprefix(_BOM)
    if not text.strip():
        raise KwDropFileError("the file is empty: expected records of " + ",".join(COLUMNS) + ",KwDrop1,...")
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text.replace("\x00", "\ufffd")))
    nul_lines = {n for n, line in enumerate(text.split("\n"), start=1) if "\x00" in line}
    first = True
    try:
        for fields in reader:
            n = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if first:
                first = False
                if _header_key(fields[0]) == "eventid":
                    got = [_header_key(f) for f in fields[:FIXED]]
                    for i, name in enumerate(COLUMNS):
                        if i >= len(got) or got[i] != _header_key(name):
                            found = fields[i] if i < len(fields) else "nothing"
                            raise KwDropFileError(f"line {n}: header column {i + 1} is {found!r}; expected {name} "
                                                  f"(the columns are {','.join(COLUMNS)},KwDrop1,...)")
                    continue
            if n in nul_lines:
                errors.add(n, "line", "contains a NUL character")
                continue
            long = [i for i, f in enumerate(fields) if len(f) > checks.MAX_FIELD]
            if long:
                errors.add(n, column_name(long[0]),
                           f"is {len(fields[long[0]]):,} characters long (at most {checks.MAX_FIELD})")
                continue
            if len(fields) < FIXED:
                errors.add(n, "line", f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; a record needs "
                                      f"{', '.join(COLUMNS)}, then one KwDrop per interval")
                continue
            rows.append((n, [f.strip() for f in fields]))
    except csv.Error as exc:
        raise KwDropFileError(f"line {reader.line_num}: not a readable CSV line ({exc})") from exc
    return rows


def column_name(index: int) -> str:
    """``COLUMNS[index]``, or ``KwDrop<n>`` past them."""
    return COLUMNS[index] if index < FIXED else f"{VALUE_COLUMN}{index - FIXED + 1}"


def _number(text: str) -> float | None:
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if value == value and abs(value) != float("inf") else None


def _places(text: str) -> int:
    mantissa, _, exponent = text.lower().partition("e")
    places = len(mantissa.partition(".")[2])
    return max(0, places - int(exponent or 0))


def _time(text: str, column: str, tz, problems: list, years: tuple[int, int] = checks.YEARS) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        problems.append((column, f"not a date and time: {text!r} (ISO 8601, e.g. 2026-07-15T14:00:00-07:00)"))
        return None
    try:
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        if tz is None:
            return None  # the program is unknown (its own error): the zone of a local time is too
        return local_wall_to_utc_strict(value, tz, field=column)
    except WallClockError as exc:
        problems.append((column, str(exc).removeprefix(f"{column}: ")))
        return None
    except OverflowError:  # before year 1 or after 9999 in UTC (0001-01-01T00:00+05:00): outside any years
        problems.append((column, f"{text[:40]} is outside the years {years[0]}-{years[1]}"))
        return None


def _fmt(value: float) -> str:
    return f"{value:g}"


def parse_records(rows: list[tuple[int, list[str]]], errors, *, limits: dict) -> list[KwDropRecord]:
    """Check and resolve the records (a few queries for the whole file: programs, events, service points,
    participations); rejects through ``errors.add(line, column, message, count)`` (every problem of a line is
    listed; the line counts once). Returns the good records in file order, duplicates settled (see the module)."""
    programs = lookup_many(Program.objects.all(), [f[1] for _, f in rows], ("code",))
    sps = lookup_many(ServicePoint.objects.only("pk", "service_point_id", "customer_class"),
                      [f[2] for _, f in rows], ("service_point_id",))
    event_ids = {int(f[0]) for _, f in rows if ascii_digits(f[0]) and 0 < int(f[0]) <= 2**63 - 1}
    by_pk = {e.pk: e for e in Event.objects.select_related("program").filter(pk__in=event_ids)} if event_ids else {}
    names = {f[0] for _, f in rows if f[0] and not ascii_digits(f[0])}
    by_name: dict[tuple[int, str], list[Event]] = {}
    if names:
        program_pks = {p.pk for p in programs if p is not None}
        for e in Event.objects.select_related("program").filter(name__in=names, program_id__in=program_pks):
            by_name.setdefault((e.program_id, e.name), []).append(e)
    resolved_events: list[Event | None] = []
    event_problem: list[str | None] = []
    for (_, f), program in zip(rows, programs, strict=True):
        key, event, problem = f[0], None, None
        if not key:
            problem = "is empty"
        elif ascii_digits(key):
            event = by_pk.get(int(key)) if 0 < int(key) <= 2**63 - 1 else None
            if event is None:
                problem = f"No event has id {key}."
        elif program is not None:
            found = by_name.get((program.pk, key), [])
            if len(found) > 1:
                problem = f"More than one event of program {program.code} has name {key!r}; name it by its id."
            elif found:
                event = found[0]
            else:
                problem = f"No event of program {program.code} has id or name {key!r}."
        resolved_events.append(event)
        event_problem.append(problem)
    pairs = {(e.pk, sp.pk) for e, sp in zip(resolved_events, sps, strict=True) if e is not None and sp is not None}
    taking_part: set[tuple[int, int]] = set()
    if pairs:
        wanted_sps = {sp for _, sp in pairs}
        taking_part = {pair for pair in Participation.objects.filter(
            event_id__in={e for e, _ in pairs}, service_point_id__gte=min(wanted_sps),
            service_point_id__lte=max(wanted_sps)).values_list("event_id", "service_point_id").distinct().order_by()
            if pair in pairs}

    good: list[KwDropRecord] = []
    for (n, f), program, sp, event, eproblem in zip(rows, programs, sps, resolved_events, event_problem,
                                                   strict=True):
        problems: list[tuple[str, str]] = []
        if program is None:
            problems.append(("ProgramId", "is empty" if not f[1] else f"No program has code or id {f[1]!r}."))
        if eproblem:
            problems.append(("EventId", eproblem))
        elif program is not None and event.program_id != program.pk:
            problems.append(("EventId", f"event {event.pk} belongs to program {event.program.code}, not "
                                        f"{program.code}"))
            event = None
        if sp is None:
            problems.append(("SPId", "is empty" if not f[2] else f"No service point has service point id or id "
                                                                 f"{f[2]!r}."))
        elif event is not None and (event.pk, sp.pk) not in taking_part:
            problems.append(("SPId", f"service point {sp.service_point_id} has no participation in event "
                                     f"{event.pk}"))
        tz = zone(program.time_zone) if program is not None else None
        start = _time(f[3], "ActualStartTime", tz, problems, limits["years"])
        end = _time(f[4], "ActualEndTime", tz, problems, limits["years"])
        size = int(f[5]) if ascii_digits(f[5]) else None
        if size is None or not 0 < size <= MAX_INTERVAL_SECONDS:
            problems.append(("IntervalSize(Seconds)", f"must be a whole number of seconds from 1 to "
                                                      f"{MAX_INTERVAL_SECONDS:,}, not {f[5]!r}"))
            size = None
        lo, hi = checks.epoch_range(limits["years"])
        for column, value in (("ActualStartTime", start), ("ActualEndTime", end)):
            if value is not None and not lo <= value.timestamp() < hi:
                problems.append((column, f"{f[3] if column == 'ActualStartTime' else f[4]} is outside the years "
                                         f"{limits['years'][0]}-{limits['years'][1]}"))
                start = end = None
        count = None
        if start is not None and end is not None:
            span = (end - start).total_seconds()
            if span <= 0:
                problems.append(("ActualEndTime", f"{f[4]} is not after ActualStartTime {f[3]}"))
            elif size is not None and span % size:
                problems.append(("ActualEndTime", f"the span from ActualStartTime to ActualEndTime ({span:,.0f} s) "
                                                  f"is not a whole number of {size}-second intervals"))
            elif size is not None:
                count = int(span // size)
                if count > MAX_INTERVALS:
                    problems.append(("IntervalSize(Seconds)", f"{count:,} intervals of {size} s: at most "
                                                              f"{MAX_INTERVALS:,} per record"))
                    count = None
            if event is not None and span > 0 and (end <= event.start or start >= event.end):
                where = event.program.time_zone
                problems.append(("ActualStartTime", f"the reported span {format_local(start, where)} to "
                                                    f"{format_local(end, where)} does not overlap event {event.pk} "
                                                    f"({format_local(event.start, where)} to "
                                                    f"{format_local(event.end, where)})"))
        texts = f[FIXED:]
        values: list[float | None] = []
        if count is not None:
            given = len(texts)
            while given > count and not texts[given - 1]:
                given -= 1  # padding to a header's width
            if given != count:
                s_ = "s" if count != 1 else ""
                problems.append((VALUE_COLUMN, f"{count} interval{s_} of {size} s from ActualStartTime to "
                                               f"ActualEndTime need{'' if s_ else 's'} {count} KwDrop value{s_}; "
                                               f"the record has {given}"))
            else:
                texts = texts[:count]
        limit_kw = (limits["per_hour_ci"] if sp is not None and sp.customer_class == "commercial_industrial"
                    else limits["per_hour"])
        for i, text in enumerate(texts):
            column = column_name(FIXED + i)
            if not text:
                values.append(None)
                continue
            value = _number(text)
            if value is None:
                problems.append((column, f"not a finite number of kW: {text!r}"))
            elif abs(value) > limit_kw:
                setting = "CPM_MAX_KWH_PER_HOUR_CI" if limit_kw == limits["per_hour_ci"] != limits["per_hour"] else \
                    "CPM_MAX_KWH_PER_HOUR"
                problems.append((column, f"{_fmt(value)} kW is beyond the plausible {_fmt(limit_kw)} kW "
                                         f"({setting} = {_fmt(limit_kw)} kWh per hour)"))
            values.append(value)
        max_kw: Decimal | None = None
        if f[6]:
            max_value = _number(f[6])
            if max_value is None:
                problems.append(("MaxKwDrop", f"not a finite number of kW: {f[6]!r}"))
            else:
                try:
                    max_kw = Decimal(f[6]).quantize(Decimal("0.0001"))
                except InvalidOperation:
                    problems.append(("MaxKwDrop", f"{f[6]} is beyond the largest kW drop cpm stores"))
                reported = [(v, i) for i, v in enumerate(values) if v is not None]
                if count is not None and len(values) == count and not any(p[0] == VALUE_COLUMN for p in problems):
                    if not reported:
                        problems.append(("MaxKwDrop", f"{f[6]} given, but no interval has a kW drop"))
                    else:
                        top = max(v for v, _ in reported)
                        at = next(i for v, i in reported if v == top)
                        if abs(max_value - top) > 0.5 * 10 ** -_places(f[6]) + 1e-9:
                            problems.append(("MaxKwDrop", f"{f[6]} is not the largest KwDrop value "
                                                          f"({column_name(FIXED + at)} = {_fmt(top)})"))
        if problems:
            for k, (column, message) in enumerate(problems):
                errors.add(n, column, message, count=1 if k == 0 else 0)
            continue
        good.append(KwDropRecord(line=n, event=event, service_point_id=sp.pk, actual_start=start, actual_end=end,
                                 interval_seconds=size, max_kw_drop=max_kw, kw_drop=values))
    return _settle_duplicates(good, errors)


def _settle_duplicates(records: list[KwDropRecord], errors) -> list[KwDropRecord]:
    first: dict[tuple[int, int], KwDropRecord] = {}
    conflicted: set[tuple[int, int]] = set()
    out: list[KwDropRecord] = []
    for r in records:
        key = (r.event.pk, r.service_point_id)
        seen = first.get(key)
        if seen is None:
            first[key] = r
            out.append(r)
            continue
        same = (seen.actual_start, seen.actual_end, seen.interval_seconds, seen.max_kw_drop, seen.kw_drop) == (
            r.actual_start, r.actual_end, r.interval_seconds, r.max_kw_drop, r.kw_drop)
        if same and key not in conflicted:
            errors.add(r.line, "SPId", f"duplicate of line {seen.line} (same event and service point, same "
                                       f"values): line {seen.line} is loaded once")
            continue
        errors.add(r.line, "SPId", f"conflicting duplicate of line {seen.line}: the same event {key[0]} and "
                                   "service point with other values (neither is loaded)")
        if key not in conflicted:
            conflicted.add(key)
            errors.add(seen.line, "SPId", f"conflicting duplicate of line {r.line}: the same event {key[0]} and "
                                          "service point with other values (neither is loaded)")
    return [r for r in out if (r.event.pk, r.service_point_id) not in conflicted]


def apply_records(parts: list[list[KwDropRecord]], *, errors, load: MeterDataLoad, now: dt.datetime) -> dict:
    """Store the records (one transaction, the caller's): unchanged ones write nothing; changed ones supersede the
    current version. Locks the named events' rows first (in id order) so concurrent loads of an event queue.
    Returns ``{"new", "unchanged", "corrected"}`` record counts."""
    records = [r for part in parts for r in part]
    counts = {"new": 0, "unchanged": 0, "corrected": 0}
    if not records:
        return counts
    event_ids = sorted({r.event.pk for r in records})
    list(Event.objects.select_for_update().filter(pk__in=event_ids).order_by("pk").values_list("pk", flat=True))
    sp_ids = {r.service_point_id for r in records}
    current = {(x.event_id, x.service_point_id): x for x in ReportedKwDrop.objects.filter(
        event_id__in=event_ids, is_current=True, service_point_id__gte=min(sp_ids),
        service_point_id__lte=max(sp_ids)).order_by()}
    superseded, new_rows = [], []
    for r in records:
        old = current.get((r.event.pk, r.service_point_id))
        if old is not None and r.same_as(old):
            counts["unchanged"] += 1
            continue
        counts["corrected" if old is not None else "new"] += 1
        if old is not None:
            superseded.append(old.pk)
        reported = sum(v is not None for v in r.kw_drop)
        new_rows.append(ReportedKwDrop(
            event_id=r.event.pk, service_point_id=r.service_point_id, actual_start=r.actual_start,
            actual_end=r.actual_end, interval_seconds=r.interval_seconds, max_kw_drop=r.max_kw_drop,
            kw_drop=r.kw_drop, intervals_reported=reported, intervals_missing=len(r.kw_drop) - reported,
            version=(old.version + 1) if old is not None else 1, is_current=True, received_at=load.created_at,
            load=load, line=r.line))
    if superseded:
        ReportedKwDrop.objects.filter(pk__in=superseded).update(is_current=False)
    ReportedKwDrop.objects.bulk_create(new_rows, batch_size=2000)
    return counts


def read_file(data: bytes | str, errors, *, limits: dict) -> list[list[KwDropRecord]]:
    """Parse, check and resolve a whole kW-drop file: ``[records]`` for ``apply_records``."""
    return [parse_records(split_rows(data, errors), errors, limits=limits)]


@use_case("meter_data.load_kw_drop", Cap.LOAD_METER_DATA)
def kw_drop_file_load(*, now: dt.datetime, content: bytes | str | None = None, path: str | Path | None = None,
                      file_name: str = "", actor) -> MeterDataLoad:
    """Load a kW-drop file (the layout of this module) synchronously in this process (command line, tests); the
    upload page and the API send the same file to ``meter_data_load_submit(source="kw_drop")`` (a job).

    content: the file (bytes or text), or path: the file on disk (exactly one, else ``DomainValidationError``
    ``content``; an unreadable path: ``DomainValidationError`` ``path``, no load made). Returns the load: COMPLETED,
    COMPLETED_WITH_ERRORS with its row errors (rows = lines of the file), or FAILED for a file-level problem (nothing
    written).
    """
    from .loaders import LOAD_TRANSITIONS, _Errors, _run, limits

    if (content is None) == (path is None):
        raise DomainValidationError({"content": ["give either content or path"]})
    if path is not None:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise DomainValidationError({"path": [f"cannot read {path}: {exc.strerror}"]}) from exc
    with transaction.atomic():
        load = MeterDataLoad.objects.create(source=MeterDataLoad.Source.KW_DROP, file_name=file_name[:300],
                                            created_at=now)
        transition(obj=load, to=MeterDataLoad.Status.RUNNING, allowed=LOAD_TRANSITIONS, now=now, actor=actor,
                   extra_updates={"started_at": now})

    def work(stack: contextlib.ExitStack):
        errors = _Errors()
        return read_file(content, errors, limits=limits()), errors

    return _run(load, work, now=now, actor=actor, reraise=True, apply=apply_records)
