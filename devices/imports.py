"""CSV imports: the shared all-or-nothing machinery, and aggregator device lists.

Every import is atomic: each row is checked (and written inside a savepoint); if any row fails, nothing is written
and every error is reported as ``line N: field: message``, N being the line of the file where the row starts (the
header is line 1; a quoted value spanning lines makes later rows start further down). Re-importing the same file
changes nothing and reports every row ``unchanged``. Counts are per entity: new / updated / unchanged.

What is refused, never raised (a parser reports bad content; it does not crash on it):

- file-level (reported on line 1, nothing else is checked): an empty file, a header without data rows, a UTF-16 or
  UTF-32 file, a quote never closed (on the line it opens: the rest of the file would be one value), missing
  required columns (listed), unknown columns (listed: the formats are strict, so a misspelt
  optional column is not silently ignored), a column named twice, a CSV syntax error (on its line);
- per value: a byte that is not UTF-8 or a NUL character anywhere in the file (its line and column), a value longer
  than its model field allows (or ``MAX_CELL_CHARS`` for columns without a length), more values than columns, fewer
  values than columns (a line cut short: its missing columns would read as empty and reset what they hold);
- per row: dates outside ``CPM_IMPORT_MIN_YEAR``..``CPM_IMPORT_MAX_YEAR`` (default 1900..2100), numbers that are
  not finite, negative, or beyond their plausibility bound (devices: ``devices.services.validate_device_fields``);
- conflicting duplicates: two rows giving one key (a device's ``aggregator_device_id``; a CIS premise, service
  point, customer, account or agreement id) different values are both refused, each naming the other's line.
  Identical repeats are fine and count once.

At most ``MAX_ERRORS`` errors are listed (a binary file would give one per line); the last one says so.

Concurrency: two imports of the same rows at once end as if run one after the other. Upserts lock the row they
update (``select_for_update``) and a creation that loses a race to a concurrent one (unique key) is retried as an
update inside its savepoint (``devices.services.upsert``); a deadlock between two imports touching the same keys in
a different order retries the whole (rolled back) import, up to ``DEADLOCK_RETRIES`` times.

Aggregator device list (``import_devices --aggregator CODE FILE``), one row per device. Columns:

    aggregator_device_id  required; the aggregator's id for the device (unique per aggregator)
    device_type           required; thermostat | ev_charger | battery | solar_inverter | water_heater
    capacity_kw           required; controllable capacity, kW (decimal, >= 0, 3 decimals, at most CPM_MAX_DEVICE_KW)
    usable_energy_kwh     optional; batteries: usable energy, kWh (at most CPM_MAX_DEVICE_KWH)
    manufacturer, model, serial_number, firmware_version   optional text
    ownership             optional; customer_owned (default). utility_owned rows are refused (out of scope)
    service_point_id      optional; where the device is installed (CIS service point id)
    installed_on          required with service_point_id (and refused without it); local date YYYY-MM-DD
    status                optional; registered | active | inactive | retired (moved by allowed transitions)

Devices go through the device services (register, update, install, set status), so every rule and audit applies.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, OperationalError, transaction

from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainError, DomainValidationError

from . import services
from .choices import DeviceStatus
from .models import Aggregator, Device, DeviceInstallation, ServicePoint

OUTCOMES = ("new", "updated", "unchanged")
MAX_ERRORS = 500
MAX_CELL_CHARS = 1000  # a value of a column without a model length (dates, numbers, flags)
DEADLOCK_RETRIES = 3
NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"

# The csv module refuses a field longer than 131,072 characters with ``_csv.Error`` (and cannot resume after it): its
# process-wide limit is raised once at start-up (``cpm.base.uploads.raise_csv_field_limit``) so a long value is
# parsed and then refused by name.

@dataclass
class ImportReport:
    """What an import did (or would have done): counts per entity and outcome, and errors ``(line, message)``."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0
    name: str = ""
    _seen: set = field(default_factory=set, repr=False)
    #: Work an importer leaves for its ``finish`` step (e.g. the CIS import's move-outs), keyed as it likes.
    pending: dict = field(default_factory=dict, repr=False)

    def count(self, entity: str, key: Any, outcome: str) -> None:
        """Count ``outcome`` for ``entity`` ``key`` once per import (a customer repeated on many rows counts once,
        with its first outcome)."""
        if (entity, key) in self._seen:
            return
        self._seen.add((entity, key))
        bucket = self.counts.setdefault(entity, dict.fromkeys(OUTCOMES, 0))
        bucket[outcome] += 1

    def error(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, message))
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append((line, f"too many errors: stopped after {MAX_ERRORS}."))

    @property
    def full(self) -> bool:
        return len(self.errors) > MAX_ERRORS

    def summary(self) -> str:
        parts = [f"{entity}: " + ", ".join(f"{n} {o}" for o, n in c.items()) for entity, c in self.counts.items()]
        return f"{self.rows} rows; " + ("; ".join(parts) or "nothing")

    def error_lines(self) -> list[str]:
        """Every error as ``line N: field: message``."""
        return [f"line {n}: {m}" for n, m in self.errors]


class ImportFailed(Exception):
    """Raised when any row failed: nothing was written; ``report.errors`` lists ``(line number, message)``."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        super().__init__("; ".join(report.error_lines()[:20]))


def _by_field(errors: dict) -> str:
    """``{"latitude": ["Ensure ... places."], "longitude": [...]}`` -> "latitude: Ensure ... places; longitude:
    ..." (one sentence's punctuation: a message's own final period does not stand before the separator)."""
    parts = [f"{f}: {' '.join(str(m) for m in msgs)}" for f, msgs in errors.items()]
    return "; ".join([*(p.rstrip(".") for p in parts[:-1]), *parts[-1:]])


def error_text(exc: Exception) -> str:
    """One line naming the field(s) of a domain or model validation error."""
    if isinstance(exc, DomainValidationError):
        return _by_field(exc.errors)
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return _by_field(exc.message_dict)
        return " ".join(exc.messages)
    return str(exc)


@dataclass(frozen=True)
class Format:
    """A strict CSV format: its columns (name -> longest value, ``None`` = ``MAX_CELL_CHARS``), the required ones,
    and its keys: ``(entity, key column, columns that must agree on every row giving that key)``; a key of several
    columns is a tuple of their names (every one given, or the row is not compared)."""

    columns: dict[str, int | None]
    required: Sequence[str]
    keys: Sequence[tuple[str, str | tuple[str, ...], Sequence[str]]] = ()


def _text(source) -> tuple[str | None, str | None]:
    """The source as text (``surrogateescape`` keeps the bytes that are not UTF-8, to be reported by line and
    column), or a file-level error."""
    if hasattr(source, "read"):
        source = source.read()
    if isinstance(source, str):
        return source, None
    if source[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return None, "the file is UTF-32 text; save it as UTF-8 CSV."
    if source[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None, "the file is UTF-16 text; save it as UTF-8 CSV."
    return source.decode("utf-8", errors="surrogateescape"), None


def _bad_text(value: str) -> bool:
    """True if ``value`` holds a byte that was not UTF-8 (a lone surrogate from ``surrogateescape``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _ends_in_open_quote(text: str) -> bool:
    """True if the file ends inside a quoted value (the csv module then reads the rest of the file as that value,
    silently). Checked only when the last record spans several lines; a file whose quoting the strict reader refuses
    earlier (``"Smith" Jr``, which the lenient reader keeps) is not judged here."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def read_csv(source, fmt: Format, report: ImportReport) -> tuple[list[tuple[int, dict[str, str]]], bool]:
    """Parse ``source`` (text, bytes or a binary/text file object; UTF-8, a BOM allowed) against ``fmt``; returns
    ``([(line, row)], fatal)``: the rows without errors (values stripped), and whether a file-level error stops the
    import. Errors go to ``report``; never raises on content."""
    text, problem = _text(source)
    if problem:
        report.error(1, problem)
        return [], True
    text = text.removeprefix("\ufeff")
    if not text.strip():
        report.error(1, "the file is empty.")
        return [], True
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 1
    rows: list[tuple[int, dict[str, str]]] = []
    last = last_start = 0
    while not report.full:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.error(reader.line_num, f"not valid CSV ({exc}).")
            return [], True
        line, last = last + 1, reader.line_num
        last_start = line
        if not record:
            continue
        if header is None:
            header, header_line = [h.strip() for h in record], line
            if not _check_header(header, line, fmt, report):
                return [], True
            continue
        row, ok = {}, True
        if len(record) > len(header) and any(v.strip() for v in record[len(header):]):
            report.error(line, f"{len(record)} values but the header names {len(header)} columns.")
            ok = False
        elif len(record) < len(header):  # a truncated line: its missing columns are not "empty" values
            report.error(line, f"{len(record)} value{'s' if len(record) != 1 else ''} but the header names "
                               f"{len(header)} columns (a row cut short?).")
            ok = False
        for column, value in zip(header, record, strict=False):
            value = value.strip()
            limit = fmt.columns[column] or MAX_CELL_CHARS
            if _bad_text(value):
                report.error(line, f"{column}: {NOT_UTF8}.")
                ok = False
            elif "\x00" in value:
                report.error(line, f"{column}: contains a NUL character (is this a binary file?).")
                ok = False
            elif len(value) > limit:
                report.error(line, f"{column}: {len(value):,} characters; at most {limit:,} allowed.")
                ok = False
            row[column] = value
        if ok:
            rows.append((line, row))
        else:
            report.rows += 1
    if header is None:
        report.error(1, "the file is empty.")
        return [], True
    if last_start < last and _ends_in_open_quote(text):
        report.error(last_start, f"a quoted value opens here and is never closed: lines {last_start} to {last} "
                                 "would be read as one value (close the quote or double it inside the value).")
        return [], True
    report.rows += len(rows)
    if not report.rows and not report.errors:
        report.error(header_line, "the file has a header but no data rows.")
        return [], True
    return _without_conflicts(rows, fmt, report), False


def _check_header(header: list[str], line: int, fmt: Format, report: ImportReport) -> bool:
    problems = []
    if any(_bad_text(h) or "\x00" in h for h in header):
        report.error(line, f"header: {NOT_UTF8}." if any(_bad_text(h) for h in header)
                     else "header: contains a NUL character (is this a binary file?).")
        return False
    missing = [c for c in fmt.required if c not in header]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [h for h in header if h not in fmt.columns]
    if unknown:
        shown = ", ".join(repr(h[:40]) for h in unknown[:20])
        problems.append(f"unknown column(s): {shown} (expected: {', '.join(fmt.columns)})")
    repeated = sorted({h for h in header if header.count(h) > 1 and h in fmt.columns})
    if repeated:
        problems.append(f"column(s) named twice: {', '.join(repeated)}")
    for problem in problems:
        report.error(line, problem)
    return not problems


def _without_conflicts(rows: list[tuple[int, dict[str, str]]], fmt: Format, report: ImportReport):
    """Refuse every row of a key that other rows give different values (naming their lines); keep the rest."""
    refused: dict[int, list[str]] = {}
    for entity, key_column, columns in fmt.keys:
        key_columns = (key_column,) if isinstance(key_column, str) else tuple(key_column)
        if not isinstance(key_column, str):
            key_column = ", ".join(key_columns)
        groups: dict[str, list[tuple[int, tuple]]] = {}
        for line, row in rows:
            parts = [row.get(c, "") for c in key_columns]
            if all(parts):
                key = ", ".join(parts)
                groups.setdefault(key, []).append((line, tuple(row.get(c, "") for c in columns)))
        for key, members in groups.items():
            if len({values for _, values in members}) < 2:
                continue
            for line, values in members:
                others = [str(n) for n, v in members if v != values]
                differing = [c for i, c in enumerate(columns) if any(v[i] != values[i] for _, v in members)]
                refused.setdefault(line, []).append(
                    f"{key_column}: {entity} {key[:64]!r} is given different values on line(s) "
                    f"{', '.join(others)} ({', '.join(differing)}).")
    for line in sorted(refused):
        for message in refused[line]:
            report.error(line, message)
    return [(line, row) for line, row in rows if line not in refused]


def run_import(source, *, fmt: Format, handle: Callable[[dict[str, str], ImportReport], None],
               name: str = "", finish: Callable[[ImportReport], None] | None = None,
               order: Callable[[dict[str, str]], Any] | None = None) -> ImportReport:
    """Apply ``handle(row, report)`` to every row, all or nothing (see module docstring), then ``finish(report)``
    in the same transaction when every row passed. ``order(row)``: a sort key when the file's meaning does not
    depend on the order of its rows but the rows must be applied in some order (the CIS import ends agreements
    before it opens the next ones); errors still name the rows' lines. Raises ``ImportFailed`` (nothing written) or
    returns the counts."""
    if not name:
        name = str(getattr(source, "name", "") or "")
    for attempt in range(DEADLOCK_RETRIES):
        report = ImportReport(name=name)
        if hasattr(source, "seek"):
            source.seek(0)
        rows, fatal = read_csv(source, fmt, report)
        if fatal:
            raise ImportFailed(report)
        if order is not None:
            rows.sort(key=lambda item: order(item[1]))  # stable: rows of one key keep the file's order
        try:
            _apply(rows, handle, report, finish)
        except OperationalError:
            # A deadlock (or lock timeout) with a concurrent import: everything was rolled back; run it again.
            if attempt == DEADLOCK_RETRIES - 1:
                report.error(1, "the import kept colliding with concurrent imports of the same rows; "
                                "try again.")
                raise ImportFailed(report) from None
            time.sleep(0.05 * (attempt + 1))
            continue
        break
    if report.errors:
        report.errors.sort(key=lambda e: e[0])
        raise ImportFailed(report)
    return report


def _apply(rows, handle, report: ImportReport, finish=None) -> None:
    with transaction.atomic():
        for number, row in rows:
            if report.full:
                break
            try:
                with transaction.atomic():
                    handle(row, report)
            except (DomainError, ValidationError, ValueError, LookupError) as exc:
                report.error(number, error_text(exc))
            except DataError as exc:  # a value the database refuses (a bound this code missed): the row's error
                report.error(number, f"the database refused the row ({str(exc).splitlines()[0]}).")
        if not report.errors and finish is not None:
            try:
                with transaction.atomic():
                    finish(report)
            except (DomainError, ValidationError, ValueError, LookupError) as exc:
                report.error(1, error_text(exc))
        if report.errors:
            transaction.set_rollback(True)


def parse_date(value: str, column: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date within ``CPM_IMPORT_MIN_YEAR``..``CPM_IMPORT_MAX_YEAR`` (default 1900..2100)."""
    if not value:
        return None
    try:
        date = dt.date.fromisoformat(value)
    except ValueError:
        raise DomainValidationError({column: [f"{value[:40]!r} is not a date (YYYY-MM-DD)."]}) from None
    low, high = settings.CPM_IMPORT_MIN_YEAR, settings.CPM_IMPORT_MAX_YEAR
    if not low <= date.year <= high:
        raise DomainValidationError({column: [
            f"{value} is outside the plausible years {low}..{high} (CPM_IMPORT_MIN_YEAR, CPM_IMPORT_MAX_YEAR)."]})
    return date


def parse_bool(value: str, column: str, default: bool = False) -> bool:
    if value == "":
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise DomainValidationError({column: [f"{value[:40]!r} is not true/false."]})


def require(row: dict[str, str], *columns: str) -> None:
    missing = [c for c in columns if not row.get(c)]
    if missing:
        raise DomainValidationError({c: ["This value is required."] for c in missing})


def model_columns(model, names: Iterable[str], **extra: int | None) -> dict[str, int | None]:
    """Columns named like ``model``'s fields, with their ``max_length`` (``None`` for other fields)."""
    columns = {n: getattr(model._meta.get_field(n), "max_length", None) for n in names}
    return {**columns, **extra}


# --- aggregator device lists -------------------------------------------------------------------------------------

DEVICE_COLUMNS = ("aggregator_device_id", "device_type", "capacity_kw")
_DEVICE_ATTRS = ("device_type", "capacity_kw", "usable_energy_kwh", "manufacturer", "model", "serial_number",
                 "firmware_version", "ownership")
_DEVICE_ALL = ("aggregator_device_id", *_DEVICE_ATTRS, "status")
DEVICE_FORMAT = Format(
    columns=model_columns(Device, _DEVICE_ALL, service_point_id=ServicePoint._meta.get_field(
        "service_point_id").max_length, installed_on=None),
    required=DEVICE_COLUMNS,
    keys=[("device", "aggregator_device_id",
           [c for c in (*_DEVICE_ALL, "service_point_id", "installed_on") if c != "aggregator_device_id"])],
)


def _device_for(aggregator: Aggregator, key: str) -> Device | None:
    """The device, row-locked for the rest of the import (a concurrent import of the same device waits)."""
    return Device.objects.select_for_update().filter(aggregator=aggregator, aggregator_device_id=key).first()


@use_case("devices.import", Cap.MANAGE_DEVICES)
def import_devices(source, *, aggregator: Aggregator, now: dt.datetime, actor: Any, name: str = "") -> ImportReport:
    """Import an aggregator's device list (columns in the module docstring); all or nothing; idempotent."""
    def handle(row: dict[str, str], report: ImportReport) -> None:
        require(row, *DEVICE_COLUMNS)
        if row.get("installed_on") and not row.get("service_point_id"):
            raise DomainValidationError({"installed_on": [
                f"{row['installed_on'][:40]} is given without a service_point_id: name the service point the device "
                "is installed at, or leave installed_on empty."]})
        attrs = {k: row[k] for k in _DEVICE_ATTRS if k in row}
        attrs["usable_energy_kwh"] = attrs.get("usable_energy_kwh") or None
        attrs["ownership"] = attrs.get("ownership") or "customer_owned"
        key = row["aggregator_device_id"]
        device = _device_for(aggregator, key)
        outcome = "new"
        if device is None:
            try:
                device = services.device_register(aggregator=aggregator, aggregator_device_id=key, now=now,
                                                  actor=actor, **attrs)
            except ConflictError as exc:
                if exc.code != "device_exists":
                    raise
                # A concurrent import registered it first (and has committed): update it instead.
                device = _device_for(aggregator, key)
                if device is None:
                    raise
                outcome = ""
        else:
            outcome = ""
        if not outcome:
            before = {k: getattr(device, k) for k in _DEVICE_ATTRS}
            services.device_update(device=device, data=attrs, now=now, actor=actor)
            outcome = "updated" if before != {k: getattr(device, k) for k in _DEVICE_ATTRS} else "unchanged"
        if row.get("service_point_id"):
            require(row, "installed_on")
            installed_on = parse_date(row["installed_on"], "installed_on")
            service_point = ServicePoint.objects.filter(service_point_id=row["service_point_id"]).first()
            if service_point is None:
                raise DomainValidationError({"service_point_id": [
                    f"Unknown service point {row['service_point_id']!r}."]})
            current = DeviceInstallation.objects.filter(device=device, removed_on__isnull=True).first()
            if current is None or current.service_point_id != service_point.pk:
                services.device_install(device=device, service_point=service_point, installed_on=installed_on,
                                        now=now, actor=actor)
                outcome = "updated" if outcome == "unchanged" else outcome
        status = row.get("status")
        if status and status != device.status:
            if status not in DeviceStatus.values:
                raise DomainValidationError({"status": [f"Unknown status {status!r}."]})
            if device.status == DeviceStatus.REGISTERED and status == DeviceStatus.INACTIVE:
                services.device_set_status(device=device, status=DeviceStatus.ACTIVE, now=now, actor=actor,
                                           reason="import")
            services.device_set_status(device=device, status=status, now=now, actor=actor, reason="import")
            outcome = "updated" if outcome == "unchanged" else outcome
        report.count("devices", key, outcome)

    return run_import(source, fmt=DEVICE_FORMAT, handle=handle, name=name)
