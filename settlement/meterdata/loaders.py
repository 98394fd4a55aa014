"""Write path of interval data: load jobs (CSV, Green Button, REST, programmatic) into ``IntervalDay`` versions.

Rules (issue 5, section 1):
- Readings are grouped by (service point, device, channel, UTC day); an existing current day is merged: a value
  provided in the new data replaces the stored one, NaN (not provided) keeps it. Gaps stay gaps, never zeros.
- Re-loading identical data writes nothing ("0 new, N unchanged"). Any new or changed value writes a new version of
  the day (``version + 1``, its ``received_at`` and ``load``) and marks the old row ``is_current=False`` (kept).
- Counts per load: new (no value stored before), unchanged (same value), corrected (a different value), rejected
  (row errors, listed in ``MeterDataLoad.errors`` as ``{row, field, message}``, at most 1,000 kept).

Fast path: parsing is vectorised (``settlement.meterdata.csvreadings``), days are assembled with numpy, existing
current rows are fetched with one query per chunk of days, new versions are written with ``COPY ... (FORMAT BINARY)``
on PostgreSQL (``cpm.base.bulk.copy_binary``; ``bulk_create`` elsewhere) and superseded rows are flagged with one
``UPDATE ... FROM unnest`` per chunk (``cpm.base.bulk.set_fields``).

Concurrency (issue 15): a load takes transaction-scoped advisory locks on PostgreSQL on the service points it writes,
striped (``LOCK_STRIPES`` locks: service point pk modulo the count, taken in ascending order, so two loads never
wait on each other in a cycle and the lock table stays bounded whatever the file): two loads of the same service
points run one after the other, the second reading what the first committed (identical loads: "0 new, N
unchanged"); loads of other service points run at once.

Validation (issue 15): the parsers reject implausible rows with their line and field (``settlement.meterdata.checks``
lists the rules and settings); the loader adds the per-interval kWh limit of the service point's customer class
(``CPM_MAX_KWH_PER_HOUR``, ``CPM_MAX_KWH_PER_HOUR_CI``) and, at merge, conflicting duplicates: two rows of one key
(service point, device, channel, interval start) with different values are both rejected, each naming the other's
row; identical duplicates count once.

Jobs (issue 15): every run of a load is a ``cpm.models.Job`` (kind ``meter_data_load``, subject the load) run by
``cpm.base.jobs.job_run``: a file-level problem ends the load and its job FAILED with the problem in words; any
unexpected exception does the same with the exception's text (nothing stays ``running``), writing nothing (the work
is one transaction). ``meter_data_load_retry`` runs a FAILED load again from its spooled file. A submitted load
whose message never reached a worker (no job yet, so the jobs sweeper cannot see it) is sent again by the beat
(``meter_data_loads_resend``) once it has waited ``CPM_JOB_STALL_SECONDS``.

CSV files are streamed (issue 8: peak memory bounded by the block size, not the file): the file is read in blocks of
about ``BLOCK_BYTES``, each cut after its last line end (the rest carried to the next block; a block without a line
end grows until it has one) and given the header line, so ``parse_csv`` sees a normal file; row numbers are shifted to
lines of the whole file, and the autumn repeated hour's order of appearance is carried from block to block. Each
block is resolved to pks at once. A file of one block is merged as it is; otherwise the resolved readings are spilled
to K temporary partition files (service point pk % K, K = estimated readings / ``PARTITION_READINGS``), so that every
(service point, device, channel, day) lies in one partition, and the partitions are merged one after the other in
one transaction under the lock: the result (versions, counts, row errors) is the one of a merge of the whole file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from cpm.base import bulk, jobs
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import DomainValidationError, NotFound, TransitionNotAllowed
from cpm.base.states import transition
from cpm.base.tasks import enqueue_on_commit
from devices.models import Device, ServicePoint

from . import checks, intervals, partitions
from .csvreadings import CHANNEL_NAMES, CsvEncodingError, CsvFormatError, ParsedReadings, parse_csv
from .greenbutton import GreenButtonError, parse_green_button
from .models import IntervalDay, MeterDataLoad

Status = MeterDataLoad.Status
Source = MeterDataLoad.Source
LOAD_TRANSITIONS = {
    Status.PENDING: frozenset({Status.RUNNING, Status.FAILED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED}),
    Status.FAILED: frozenset({Status.PENDING}),  # a retry
}
JOB_KIND = "meter_data_load"
LOCK_STRIPES = 512  # advisory locks of a load: service point pk % LOCK_STRIPES
CHUNK_GROUPS = 20_000
MAX_ERRORS = 1000
# Peak memory of a streamed CSV load: parsing takes ~10x the block (8 MiB: ~165,000 readings of ~50 bytes) and
# merging ~200 bytes a reading of a partition: both about 80-100 MB, so neither dominates.
BLOCK_BYTES = 8 * 2**20  # CSV bytes parsed at a time
PARTITION_READINGS = 500_000  # resolved readings merged at a time (about) when a CSV spans several blocks
_BOM = b"\xef\xbb\xbf"
# one spilled reading (43 bytes): the arrays of ``_resolve``
_SPILL_DTYPE = np.dtype([("sp", "<i8"), ("dev", "<i8"), ("channel", "i1"), ("start", "<i8"), ("minutes", "<i2"),
                         ("kwh", "<f8"), ("rows", "<i8")])
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_LOCK_KEY = 727_001  # pg_advisory_xact_lock(key, stripe) namespace of interval loads
# File-level problems: the load fails with the message (no traceback), nothing is written.
_FILE_PROBLEMS = (CsvFormatError, GreenButtonError, OSError, KeyError, DomainValidationError)


def limits() -> dict:
    """The plausibility limits from settings (defaults in ``settlement.meterdata.checks``)."""
    return {"per_hour": float(getattr(settings, "CPM_MAX_KWH_PER_HOUR", checks.MAX_KWH_PER_HOUR)),
            "per_hour_ci": float(getattr(settings, "CPM_MAX_KWH_PER_HOUR_CI", checks.MAX_KWH_PER_HOUR_CI)),
            "years": tuple(getattr(settings, "CPM_METER_YEARS", checks.YEARS))}


_UNKNOWN = (0, "")  # (pk, customer class) of a service point id that is not there


def _limit_of(customer_class: str | None, lim: dict) -> float:
    return lim["per_hour_ci"] if customer_class == "commercial_industrial" else lim["per_hour"]


def kwh_per_hour_limit(customer_class: str | None) -> tuple[float, str]:
    """The plausible kWh per hour of interval of a service point of ``customer_class`` and the setting naming it
    (``CPM_MAX_KWH_PER_HOUR`` or ``_CI``): the limit the loaders reject readings beyond, for callers that check a
    reading before loading it."""
    lim = limits()
    per_hour = _limit_of(customer_class, lim)
    name = "CPM_MAX_KWH_PER_HOUR_CI" if customer_class == "commercial_industrial" else "CPM_MAX_KWH_PER_HOUR"
    return per_hour, name


def _reject_over_limit(r: dict[str, np.ndarray], limit_per_hour: np.ndarray | float, errors: _Errors,
                       lim: dict) -> dict[str, np.ndarray]:
    """Drop (as row errors) the readings of ``r`` beyond the per-interval limit of their service point."""
    ok = np.ones(r["kwh"].size, dtype=bool)

    def setting(k: int) -> str:
        per_hour = float(np.asarray(limit_per_hour) if np.ndim(limit_per_hour) == 0 else limit_per_hour[k])
        name = "CPM_MAX_KWH_PER_HOUR_CI" if per_hour == lim["per_hour_ci"] != lim["per_hour"] else \
            "CPM_MAX_KWH_PER_HOUR"
        return f"{name} = {per_hour:g} kWh per hour"

    checks.reject_over_limit(r["kwh"], r["minutes"], limit_per_hour, r["rows"], ok, errors.add, setting=setting)
    if ok.all():
        return r
    return {name: a[ok] for name, a in r.items()}


def _row_key(item: dict) -> int:
    return -1 if item["row"] is None else item["row"]  # file-level items (no row) first


class _Errors:
    """Row errors of one load: ``rejected`` is exact; the ``MAX_ERRORS`` items of the lowest rows are kept, so a load
    read block by block keeps the same items as one read at once. ``sorted_items()``: the kept items by row."""

    _full: int | None = None  # once MAX_ERRORS are kept: the highest kept row (an item at or past it is not kept)

    def __init__(self, initial: Iterable[dict] = (), rejected: int = 0) -> None:
        self.items: list[dict] = []
        self.rejected = 0
        self.extend(initial, rejected)

    def add(self, row, field: str, message: str, count: int = 1) -> None:
        self.rejected += count
        row = None if row is None else int(row)
        if self._full is not None and (-1 if row is None else row) >= self._full:
            return  # would be trimmed anyway: spares a dict per row of a file full of errors
        self._keep({"row": row, "field": field, "message": message})

    def extend(self, items: Iterable[dict], rejected: int) -> None:
        """Take the errors of a parsed block (``rejected`` may exceed the items given)."""
        self.rejected += rejected
        for item in items:
            self._keep(item)

    def sorted_items(self) -> list[dict]:
        self._trim()
        return self.items

    def _keep(self, item: dict) -> None:
        self.items.append(item)
        if len(self.items) >= 2 * MAX_ERRORS:
            self._trim()

    def _trim(self) -> None:
        self.items.sort(key=_row_key)  # stable: the items of one row keep their order
        del self.items[MAX_ERRORS:]
        if len(self.items) == MAX_ERRORS:
            self._full = _row_key(self.items[-1])


def _check_zone(tz: str | None) -> None:
    """Refuse an unknown ``tz`` before a load is made (``DomainValidationError`` naming ``tz``)."""
    if tz:
        from cpm.base.timeutils import is_valid_zone

        if not is_valid_zone(tz):
            raise DomainValidationError({"tz": [f"unknown IANA time zone {tz!r}"]})


# ----------------------------------------------------------------------------------------------- public services
@use_case("meter_data.load_readings", Cap.LOAD_METER_DATA)
def meter_readings_load(*, now: dt.datetime, source: str = Source.API, rows: Iterable[Mapping] | None = None,
                        arrays: Mapping[str, np.ndarray] | None = None, file_name: str = "", tz: str | None = None,
                        actor) -> MeterDataLoad:
    """Load readings given in Python (API bulk, demo, simulated or corrected data) synchronously; returns the record.

    rows: dicts with ``service_point_id`` (external id) or ``service_point`` (pk), ``interval_start`` (aware
        datetime, or ISO text; local text needs ``tz``), ``kwh`` (float or None = not provided), optional
        ``channel`` (``delivered``/``received``/``net``), ``interval_minutes`` (default 60), ``device`` (serial).
    arrays: the fast form: ``service_point`` int64 pks, ``start`` int64 UTC epoch seconds, ``kwh`` float64, optional
        ``channel`` int8 (0 delivered, 1 received), ``minutes`` int16 (default 60), ``device`` int64 pks (0 = none).
    Row errors are recorded on the load (``completed_with_errors``); nothing raises for bad rows.
    """
    if (rows is None) == (arrays is None):
        raise DomainValidationError({"rows": ["give either rows or arrays"]})
    _check_zone(tz)
    load = MeterDataLoad.objects.create(source=source, file_name=file_name[:300], created_at=now,
                                        options={"tz": tz} if tz else {})
    transition(obj=load, to=Status.RUNNING, allowed=LOAD_TRANSITIONS, now=now, actor=actor,
               extra_updates={"started_at": now})

    def work(stack: contextlib.ExitStack):
        if arrays is not None:
            resolved, errors = _from_arrays(arrays)
        else:
            parsed = _parse_rows(rows, tz=tz)
            errors = _Errors(parsed.errors, parsed.rejected)
            resolved = _resolve(parsed, errors)
        return [resolved], errors

    return _run(load, work, now=now, actor=actor, reraise=True)


@use_case("meter_data.load_csv", Cap.LOAD_METER_DATA)
def meter_csv_load(*, now: dt.datetime, content: bytes | str | None = None, path: str | Path | None = None,
                   file_name: str = "", tz: str | None = None, actor) -> MeterDataLoad:
    """Load a CSV (see ``settlement.meterdata.csvreadings``) synchronously in this process (CLI, bench); same rules as
    the job.

    content: the file (bytes, UTF-8 with or without BOM, or text); or path: the file on disk, streamed in blocks
    (memory bounded by ``BLOCK_BYTES`` and ``PARTITION_READINGS``, not by the file). Exactly one of them, else
    ``DomainValidationError`` (``content``); an unreadable path: ``DomainValidationError`` (``path``), no load made.
    A file-level problem (empty file, missing header column) gives a FAILED load with the message and writes nothing;
    row errors are recorded (rows = lines of the file, the header is line 1).
    """
    if (content is None) == (path is None):
        raise DomainValidationError({"content": ["give either content or path" + (", not both" if content is not None
                                                                                  else "")]})
    _check_zone(tz)
    if path is not None:
        try:
            stream: BinaryIO = open(path, "rb")  # closed by the with below
            size = os.fstat(stream.fileno()).st_size
        except OSError as exc:
            raise DomainValidationError({"path": [f"cannot read {path}: {exc.strerror}"]}) from exc
    else:
        data = content.encode() if isinstance(content, str) else content
        stream, size = io.BytesIO(data), len(data)  # BytesIO shares the bytes: no copy
    with stream:
        load = MeterDataLoad.objects.create(source=Source.CSV, file_name=file_name[:300], created_at=now,
                                            options={"tz": tz} if tz else {})
        transition(obj=load, to=Status.RUNNING, allowed=LOAD_TRANSITIONS, now=now, actor=actor,
                   extra_updates={"started_at": now})

        def work(stack: contextlib.ExitStack):
            errors = _Errors()
            return _read_csv(stream, size=size, tz=tz, row_offset=0, errors=errors, stack=stack), errors

        return _run(load, work, now=now, actor=actor, reraise=True)


@use_case("meter_data.load", Cap.LOAD_METER_DATA)
def meter_data_load_submit(*, source: str, now: dt.datetime, content: bytes | None = None,
                           path: str | Path | None = None, file_name: str = "", tz: str | None = None,
                           service_point_id: str | None = None, usage_point: str | None = None, row_offset: int = 0,
                           actor) -> MeterDataLoad:
    """Create a PENDING load for a file (CSV, Green Button XML or a kW-drop file: ``settlement.meterdata.kwdrop``)
    and enqueue its job after commit.

    content: the file's bytes, or path: a file on disk, copied without being read into memory (exactly one).
    The file is spooled under ``MEDIA_ROOT/meterdata/``. ``tz``: zone of CSV times without offset.
    ``service_point_id``: the service point a Green Button file belongs to (required for Green Button);
    ``usage_point``: the UsagePoint title or href when the file holds several. ``row_offset``: added to the line
    numbers of CSV row errors.
    """
    if (content is None) == (path is None):
        raise DomainValidationError({"content": ["give either content or path" + (", not both" if content is not None
                                                                                  else "")]})
    if source not in (Source.CSV, Source.GREEN_BUTTON, Source.API, Source.KW_DROP):  # API bulk: spooled as CSV
        raise DomainValidationError({"source": [f"must be csv, green_button, kw_drop or api, not {source!r}"]})
    if source == Source.GREEN_BUTTON and not service_point_id:
        raise DomainValidationError({"service_point_id": ["is required for a Green Button file"]})
    _check_zone(tz)
    spool = Path(settings.MEDIA_ROOT) / "meterdata"
    spool.mkdir(parents=True, exist_ok=True)
    spooled = spool / f"{uuid.uuid4().hex}.{'xml' if source == Source.GREEN_BUTTON else 'csv'}"
    if path is not None:
        try:
            shutil.copyfile(path, spooled)
        except OSError as exc:
            spooled.unlink(missing_ok=True)
            raise DomainValidationError({"path": [f"cannot read {path}: {exc.strerror}"]}) from exc
    else:
        spooled.write_bytes(content)
    load = MeterDataLoad.objects.create(
        source=source, file_name=file_name[:300], created_at=now,
        options={"path": str(spooled), "tz": tz, "service_point_id": service_point_id, "usage_point": usage_point,
                 "row_offset": row_offset, "sent_at": now.isoformat()})
    from .tasks import run_meter_data_load

    enqueue_on_commit(run_meter_data_load, load_id=load.pk)
    return load


def meter_data_load_run(*, load_id: int, now: dt.datetime, actor) -> MeterDataLoad:
    """Run a PENDING load (Celery job). Idempotent: a load already started or finished is returned unchanged.

    The job step of ``meter_data_load_submit`` (the use case ``meter_data.load``, checked when the load was
    submitted): its task passes a named system actor, recorded on the load's status changes.

    A CSV is streamed from its spooled file like ``meter_csv_load(path=...)``; a Green Button or kW-drop file is read
    whole.
    """
    try:
        load = MeterDataLoad.objects.get(pk=load_id)
    except MeterDataLoad.DoesNotExist as exc:
        raise NotFound(f"meter data load {load_id} does not exist") from exc
    if load.status != Status.PENDING:
        return load
    try:  # a conditional update: of two deliveries of the task, one runs the load
        transition(obj=load, to=Status.RUNNING, allowed=LOAD_TRANSITIONS, now=now, actor=actor,
                   extra_updates={"started_at": now})
    except TransitionNotAllowed:
        load.refresh_from_db()
        return load
    opts = load.options or {}

    if load.source == Source.KW_DROP:
        from .kwdrop import apply_records, read_file

        def read_kw_drop(stack: contextlib.ExitStack):
            errors = _Errors()
            return read_file(Path(opts["path"]).read_bytes(), errors, limits=limits()), errors

        return _run(load, read_kw_drop, now=now, actor=actor, apply=apply_records)

    def work(stack: contextlib.ExitStack):
        if load.source in (Source.CSV, Source.API):
            stream = stack.enter_context(open(opts["path"], "rb"))
            errors = _Errors()
            parts = _read_csv(stream, size=os.fstat(stream.fileno()).st_size, tz=opts.get("tz"),
                              row_offset=int(opts.get("row_offset") or 0), errors=errors, stack=stack)
            return parts, errors
        content = Path(opts["path"]).read_bytes()
        resolved, errors = _green_button(content, opts.get("service_point_id"), opts.get("usage_point"))
        return [resolved], errors

    return _run(load, work, now=now, actor=actor)


@use_case("meter_data.retry", Cap.LOAD_METER_DATA)
def meter_data_load_retry(*, load_id: int, now: dt.datetime, actor) -> MeterDataLoad:
    """Run a FAILED load again from its spooled file: back to PENDING (its counts and errors cleared, audited) and
    its job enqueued after commit. A load made without a spooled file (a synchronous load from the command line or
    given in Python) cannot be retried: load the file again."""
    try:
        load = MeterDataLoad.objects.get(pk=load_id)
    except MeterDataLoad.DoesNotExist as exc:
        raise NotFound(f"meter data load {load_id} does not exist") from exc
    if load.status != Status.FAILED:
        raise DomainValidationError({"status": [f"only a failed load can be retried; this one is {load.status}"]})
    path = (load.options or {}).get("path")
    if not path or not Path(path).exists():
        raise DomainValidationError({"file": ["this load has no stored file to run again: load the file again"]})
    transition(obj=load, to=Status.PENDING, allowed=LOAD_TRANSITIONS, now=now, actor=actor, reason="retry",
               extra_updates={"errors": [], "readings_new": 0, "readings_unchanged": 0, "readings_corrected": 0,
                              "readings_rejected": 0, "finished_at": None,
                              "options": {**(load.options or {}), "sent_at": now.isoformat()}})
    from .tasks import run_meter_data_load

    enqueue_on_commit(run_meter_data_load, load_id=load.pk)
    return load


def meter_data_loads_resend(*, now: dt.datetime, stall_seconds: int | None = None) -> int:
    """Send again the job of every PENDING load sent ``stall_seconds`` (default ``CPM_JOB_STALL_SECONDS``) ago or
    longer and not taken by a worker since: its message never reached one (the broker was down at the commit, or
    lost it). A load has no ``Job`` until a worker runs it, so the jobs sweeper cannot see it. Returns how many were
    sent (each at most once per ``stall_seconds``; ``options["sent_at"]`` records the last send).

    Safe to run from several beats and alongside workers: the load task runs a load only if it is still PENDING (one
    of two deliveries runs it). System work of the beat (``settlement.resend_pending_loads``); nothing changes state
    here, so nothing is audited."""
    stall = dt.timedelta(seconds=stall_seconds if stall_seconds is not None else settings.CPM_JOB_STALL_SECONDS)
    due = now - stall
    from .tasks import run_meter_data_load

    resent = 0
    with transaction.atomic():
        for load in (MeterDataLoad.objects.select_for_update(skip_locked=True)
                     .filter(status=Status.PENDING, created_at__lte=due).order_by("pk")):
            options = dict(load.options or {})
            if not options.get("path"):
                continue  # not a submitted load (made and run in one call): nothing to send
            try:
                sent = dt.datetime.fromisoformat(options.get("sent_at") or "")
            except ValueError:
                sent = load.created_at
            if sent > due:
                continue
            options["sent_at"] = now.isoformat()
            if MeterDataLoad.objects.filter(pk=load.pk, status=Status.PENDING).update(options=options):
                enqueue_on_commit(run_meter_data_load, load_id=load.pk)
                resent += 1
    return resent


def _run(load: MeterDataLoad, work, *, now: dt.datetime, actor, reraise: bool = False,
         apply=None) -> MeterDataLoad:
    """Run a RUNNING load's ``work(stack) -> (parts, errors)`` and merge, as a job (``cpm.base.jobs.job_run``).
    ``apply(parts, errors=, load=, now=) -> counts`` stores the parts (default: interval readings, ``_apply``).

    One transaction for parsing, resolving, merging and the load's COMPLETED status (``_finish``): whatever goes
    wrong, a worker killed midway included, writes nothing. A file-level problem (``_FILE_PROBLEMS``) fails the load
    and its job with the message; any other exception fails both with the exception in words (re-raised afterwards
    when ``reraise``: a synchronous caller sees it).
    """
    job = jobs.job_create(kind=JOB_KIND, subject=load, chunks=[], now=now, actor=actor)
    raised: list[BaseException] = []

    def body() -> MeterDataLoad:
        problem = None
        try:
            with transaction.atomic(), contextlib.ExitStack() as stack:
                try:
                    parts, errors = work(stack)
                except _FILE_PROBLEMS as exc:
                    problem = exc.message if isinstance(exc, DomainValidationError) else str(exc)
                else:
                    counts = (apply or _apply)(parts, errors=errors, load=load, now=now)
                    return _finish(load, counts, errors, now=now, actor=actor)
        except Exception as exc:
            raised.append(exc)
            raise
        # The load first, as the caller; then the job (whose failure signal fails a load still running, as
        # system:jobs: done this way round, it finds this one failed and leaves it).
        failed = _fail(load, problem, now=now, actor=actor)
        jobs.job_fail(job_id=job.pk, error=problem, now=now)
        return failed

    result = jobs.job_run(job=job, now=lambda: now, body=body)
    if result is not None:
        return result
    job.refresh_from_db()
    load.refresh_from_db()
    if load.status == Status.RUNNING:
        load = _fail(load, job.error or "the load stopped", now=now, actor=actor, field="load")
    if reraise and raised:
        raise raised[0]
    return load


# ----------------------------------------------------------------------------------------------- parsing helpers
def readings_to_csv(rows: Iterable[Mapping]) -> tuple[str, dict[int, int]]:
    """Dict rows (see ``meter_readings_load``) -> CSV text in the documented columns, and {line: pk} for rows
    that named a service point by pk."""
    lines = ["service_point_id,channel,interval_start,interval_minutes,kwh,device"]
    pk_rows: dict[int, int] = {}
    for n, row in enumerate(rows, start=2):
        sp = row.get("service_point_id")
        if sp is None and row.get("service_point") is not None:
            pk_rows[n] = int(row["service_point"])
            sp = f"#pk{int(row['service_point'])}"
        start = row.get("interval_start")
        if isinstance(start, dt.datetime):
            if start.tzinfo is None:
                start = start.isoformat()  # local: resolved with tz, or rejected
            else:
                start = start.astimezone(dt.UTC).isoformat()
        kwh = row.get("kwh")
        fields = [str(sp or ""), str(row.get("channel") or "delivered"), str(start or ""),
                  str(row.get("interval_minutes") or 60), "" if kwh is None else repr(float(kwh)),
                  str(row.get("device") or "")]
        lines.append(",".join(_csv_field(f) for f in fields))
    return "\n".join(lines) + "\n", pk_rows


def _csv_field(value: str) -> str:
    """A value as one CSV field of one line: quoted when it holds a comma or a quote (the parser gives back the very
    text: '"SP-2"' stays an unknown service point, not SP-2); a line break, which no field of the parser may hold,
    becomes a space (the row keeps its number and gets its own error)."""
    value = value.replace("\r", " ").replace("\n", " ")
    if "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _parse_rows(rows: Iterable[Mapping], *, tz: str | None) -> ParsedReadings:
    """Dict rows -> ParsedReadings via the CSV parser's rules (same validation, same messages)."""
    text, pk_rows = readings_to_csv(rows)
    # rows are numbered from 1 for API callers (line 2 of the synthetic CSV is row 1)
    return _shift_rows(parse_csv(text, tz=tz), -1)


def _shift_rows(parsed: ParsedReadings, offset: int) -> ParsedReadings:
    if offset:
        parsed.rows = parsed.rows + offset
        for e in parsed.errors:
            if e["row"] is not None:
                e["row"] += offset
    return parsed


def _csv_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """The CSV in blocks of about ``BLOCK_BYTES``, each a CSV of its own: the header line, then whole lines.

    Every block but the last ends with a line end (a block without one grows until one comes or the file ends);
    the BOM is dropped at the start of the file only. An empty or header-only file is one block (``parse_csv``
    reports it).
    """
    size = max(1, int(BLOCK_BYTES))  # read at each call: tests make it small

    def pieces() -> Iterator[bytes]:  # whole lines of about `size` bytes; the rest carried to the next piece
        carry = b""
        while more := stream.read(size):
            data = carry + more if carry else more
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            carry = data[cut:]
            yield data[:cut] if carry else data
        if carry:
            yield carry

    raw = pieces()
    first = next(raw, b"")
    if first.startswith(_BOM):
        first = first[len(_BOM):]
    header = first[: first.find(b"\n") + 1]
    yield first  # already starts with the header
    if not header:
        return
    for piece in raw:
        yield header + piece


def _read_csv(stream: BinaryIO, *, size: int, tz: str | None, row_offset: int, errors: _Errors,
              stack: contextlib.ExitStack) -> list[dict[str, np.ndarray]] | Iterator[dict[str, np.ndarray]]:
    """Parse and resolve a CSV block by block; returns the parts for ``_apply``.

    size: the file's bytes (for the partition count); row_offset: added to every row number; errors: filled with the
    row errors of parsing and resolving; stack: owns the temporary partition files (removed when it closes, errors
    included). One block: ``[resolved arrays]``. Several: an iterator over K partitions read back from disk one at a
    time. Raises ``CsvFormatError`` (empty file, missing header column, not UTF-8 with its line) before anything is
    written.
    """
    occurrences: dict = {}  # the autumn repeated hour's order of appearance, carried across blocks
    line = 2  # line of the file the next block's first row is on
    lim = limits()

    def resolved(block: bytes) -> tuple[dict[str, np.ndarray], int]:
        nonlocal line
        try:
            parsed = parse_csv(block, tz=tz, occurrences=occurrences, years=lim["years"])
        except CsvEncodingError as exc:  # the block's line -> the file's line
            raise CsvEncodingError(exc.line if exc.line == 1 else exc.line + line - 2 + row_offset) from exc
        _shift_rows(parsed, line - 2 + row_offset)  # the block's first row is line 2 of the block
        line += parsed.lines - 1
        errors.extend(parsed.errors, parsed.rejected)
        return _resolve(parsed, errors, lim), parsed.lines

    blocks = _csv_blocks(stream)
    block = next(blocks)
    first, first_lines = resolved(block)
    bytes_per_line = len(block) / max(1, first_lines)
    del block
    block = next(blocks, None)
    if block is None:
        return [first]
    k = max(1, math.ceil(size / bytes_per_line / max(1, int(PARTITION_READINGS))))
    spill = _Spill(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cpm-meterdata-"))), k)
    spill.add(first)
    del first
    while block is not None:
        part, _ = resolved(block)
        del block
        spill.add(part)
        del part
        block = next(blocks, None)
    return spill


class _Spill:
    """Resolved readings of a load on disk in K partition files by service point pk % K: every (service point,
    device, channel, day) of the load lands in one partition, so partitions can be merged one at a time."""

    def __init__(self, directory: Path, k: int) -> None:
        self.paths = [directory / f"part-{p:05d}.bin" for p in range(k)]
        self.stripes = np.zeros(LOCK_STRIPES, dtype=bool)  # the lock stripes of the service points seen
        self.months: set[int] = set()  # UTC months of the readings seen (``_months``)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.partitions()

    def add(self, r: dict[str, np.ndarray]) -> None:
        if not r["sp"].size:
            return
        self.stripes[r["sp"] % LOCK_STRIPES] = True
        self.months.update(_months(r["start"]))
        k = len(self.paths)
        part = (r["sp"] % k).astype(np.int16 if k < 2**15 else np.int64)  # int16: numpy's radix sort
        order = np.argsort(part, kind="stable")
        rec = np.empty(order.size, dtype=_SPILL_DTYPE)
        for name in _SPILL_DTYPE.names:
            rec[name] = r[name][order]
        bounds = np.searchsorted(part[order], np.arange(k + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            with self.paths[p].open("ab") as f:
                rec[bounds[p]:bounds[p + 1]].tofile(f)

    def partitions(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.paths:
            if path.exists():
                rec = np.fromfile(path, dtype=_SPILL_DTYPE)
                path.unlink()  # disk freed as the merge goes
                yield {name: rec[name] for name in _SPILL_DTYPE.names}


def _resolve(parsed: ParsedReadings, errors: _Errors, lim: dict | None = None) -> dict[str, np.ndarray]:
    """External service point ids and device serials -> pks (one query per 5,000 distinct keys); readings beyond
    the per-interval limit of their service point's customer class rejected."""
    lim = lim or limits()
    unique = parsed.sp_unique
    mapping: dict[str, tuple[int, str]] = {}  # key -> (pk, customer class)
    distinct = sorted({k for k in unique if not k.startswith("#pk")})
    if connection.vendor == "postgresql" and distinct:
        with connection.cursor() as cur:  # one query whatever the count
            # = ANY hashes the keys (or uses the index for a few): a join on unnest hashed the whole service point
            # table, once per block of a streamed file (measured: 15 ms instead of 25 for a block's 7,000 keys)
            cur.execute(f"SELECT s.service_point_id, s.id, s.customer_class FROM {ServicePoint._meta.db_table} s "
                        "WHERE s.service_point_id = ANY(%s::text[])", [bulk.text_array_literal(distinct)])
            mapping.update((key, (pk, cls)) for key, pk, cls in cur.fetchall())
        distinct = []
    for i in range(0, len(distinct), 5000):
        mapping.update((key, (pk, cls)) for key, pk, cls in ServicePoint.objects.filter(
            service_point_id__in=distinct[i:i + 5000]).values_list("service_point_id", "pk", "customer_class"))
    pk_keys = sorted({int(k[3:]) for k in unique if k.startswith("#pk")})
    for i in range(0, len(pk_keys), 5000):
        for pk, cls in ServicePoint.objects.filter(pk__in=pk_keys[i:i + 5000]).values_list("pk", "customer_class"):
            mapping[f"#pk{pk}"] = (pk, cls)
    found = [mapping.get(k, _UNKNOWN) for k in unique]  # one look-up per key (100,000s of keys per load)
    pk_of = np.fromiter((f[0] for f in found), dtype=np.int64, count=len(unique))
    limit_of = np.fromiter((_limit_of(f[1], lim) for f in found), dtype=np.float64, count=len(unique))
    sp = pk_of[parsed.sp_code] if len(unique) else np.zeros(0, dtype=np.int64)
    ok = sp > 0
    for k in np.flatnonzero(~ok):
        key = unique[parsed.sp_code[k]]
        shown = key[3:] if key.startswith("#pk") else key
        errors.add(parsed.rows[k], "service_point_id", f"unknown service point {shown!r}")
    dev = np.zeros(sp.size, dtype=np.int64)
    if parsed.device_unique:
        found: dict[str, list[int]] = {}
        serials = sorted(set(parsed.device_unique))
        for i in range(0, len(serials), 5000):
            for serial, pk in Device.objects.filter(serial_number__in=serials[i:i + 5000]).values_list(
                    "serial_number", "pk"):
                found.setdefault(serial, []).append(pk)
        dev_pk = np.array([found[s][0] if len(found.get(s, [])) == 1 else 0 for s in parsed.device_unique],
                          dtype=np.int64)
        has = parsed.device_code >= 0
        dev[has] = dev_pk[parsed.device_code[has]]
        for k in np.flatnonzero(has & (dev == 0) & ok):
            serial = parsed.device_unique[parsed.device_code[k]]
            errors.add(parsed.rows[k], "device", f"unknown device serial {serial!r}" if not found.get(serial)
                       else f"device serial {serial!r} is ambiguous")
            ok[k] = False
    limit = limit_of[parsed.sp_code] if len(unique) else np.zeros(0)
    if ok.all():  # the fast path: no copies
        keep = slice(None)
    else:
        keep = np.flatnonzero(ok)
    r = {"sp": sp[keep], "dev": dev[keep], "channel": parsed.channel[keep], "start": parsed.start[keep],
         "minutes": parsed.minutes[keep], "kwh": parsed.kwh[keep], "rows": parsed.rows[keep]}
    return _reject_over_limit(r, limit[keep], errors, lim)


def _from_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], _Errors]:
    errors = _Errors()
    sp = np.asarray(arrays["service_point"], dtype=np.int64)
    n = sp.size
    start = np.asarray(arrays["start"], dtype=np.int64)
    kwh = np.asarray(arrays["kwh"], dtype=np.float64)
    channel = np.asarray(arrays.get("channel", np.zeros(n)), dtype=np.int8)
    minutes = np.asarray(arrays.get("minutes", np.full(n, 60)), dtype=np.int16)
    dev = np.asarray(arrays.get("device", np.zeros(n)), dtype=np.int64)
    if not (start.size == kwh.size == channel.size == minutes.size == dev.size == n):
        raise DomainValidationError({"arrays": ["all arrays must have the same length"]})
    rows = np.arange(1, n + 1, dtype=np.int64)
    ok = np.isin(minutes, (5, 15, 30, 60)) & np.isin(channel, (0, 1))
    ok &= (start % (np.where(ok, minutes, 60).astype(np.int64) * 60)) == 0
    lim = limits()
    known = dict(ServicePoint.objects.filter(pk__in=np.unique(sp).tolist()).values_list("pk", "customer_class"))
    ok &= np.isin(sp, np.fromiter(known, dtype=np.int64, count=len(known)))
    for k in np.flatnonzero(~ok):
        errors.add(rows[k], "row", "unknown service point, channel, interval length or misaligned start")
    # channel 0 of the array form is delivered or net: its sign is kept; received (1) may not be negative
    checks.reject_values(kwh, start, channel, channel == 0, rows, ok, errors.add, years=lim["years"])
    keep = np.flatnonzero(ok)
    r = {"sp": sp[keep], "dev": dev[keep], "channel": channel[keep], "start": start[keep],
         "minutes": minutes[keep], "kwh": kwh[keep], "rows": rows[keep]}
    pks = np.array(sorted(known), dtype=np.int64)  # every kept row's service point is one of them
    limit_of = np.array([_limit_of(known[int(p)], lim) for p in pks], dtype=np.float64)
    limit = limit_of[np.searchsorted(pks, r["sp"])] if pks.size else np.zeros(0)
    return _reject_over_limit(r, limit, errors, lim), errors


def _green_button(content: bytes, service_point_id: str | None, usage_point: str | None):
    lim = limits()
    data = parse_green_button(content, years=lim["years"])
    named = [u for u in data.usage_points if usage_point in (u.title, u.href)] if usage_point else data.usage_points
    points = [u for u in named if u.start.size]
    if not points:  # every reading of the one usage point that gave any was refused: its rows' errors, not "none"
        points = [u for u in named if u.errors][:1] if len([u for u in named if u.errors]) == 1 else []
    if not points:
        skipped = [m for u in named for m in u.skipped]  # e.g. only a gas meter's therms: say so
        raise GreenButtonError("no interval readings found" + (f" for usage point {usage_point!r}" if usage_point
                                                              else "") + (f": {skipped[0]}" if skipped else ""))
    if len(points) > 1:
        raise GreenButtonError("the file holds several usage points with readings (" +
                               ", ".join(u.title or u.href for u in points) + "): choose one with usage_point")
    up = points[0]
    try:
        sp_pk, sp_class = ServicePoint.objects.values_list("pk", "customer_class").get(
            service_point_id=service_point_id)
    except ServicePoint.DoesNotExist as exc:
        raise DomainValidationError({"service_point_id": [f"unknown service point {service_point_id!r}"]}) from exc
    errors = _Errors()
    for e in up.errors:
        errors.add(e["row"], e["field"], e["message"])
    n = up.start.size
    r = {"sp": np.full(n, sp_pk, dtype=np.int64), "dev": np.zeros(n, dtype=np.int64), "channel": up.channel,
         "start": up.start, "minutes": up.minutes, "kwh": up.kwh, "rows": up.rows}
    return _reject_over_limit(r, _limit_of(sp_class, lim), errors, lim), errors


# ----------------------------------------------------------------------------------------------- merge and write
def _apply(parts: Iterable[dict[str, np.ndarray]], *, errors: _Errors, load: MeterDataLoad,
           now: dt.datetime) -> dict[str, int]:
    """Merge resolved readings into ``IntervalDay``; returns counts new/unchanged/corrected.

    parts: the arrays of ``_resolve`` as one dict, or as partitions of one load with no (service point, device,
    channel, day) in two of them (each validated and merged on its own: same result as all at once; taken one at a
    time from the iterable). One transaction under the advisory lock for all: an exception writes nothing.
    """
    counts = {"new": 0, "unchanged": 0, "corrected": 0}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            if isinstance(parts, _Spill):
                stripes = np.flatnonzero(parts.stripes)
                months = parts.months
            else:
                parts = list(parts)
                stripes = np.unique(np.concatenate([r["sp"] for r in parts] or [np.zeros(0, np.int64)])
                                    % LOCK_STRIPES)
                months = set().union(*(_months(r["start"]) for r in parts))
            if stripes.size:
                with connection.cursor() as cur:  # ascending stripes (unnest keeps the array's order)
                    cur.execute("SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int[]) AS k",
                                [_LOCK_KEY, stripes.tolist()])
            if months:  # after the locks, before touching the table (partitions module docstring)
                partitions.ensure_months(_month_first(m) for m in months)
        pipe = _Pipe(load)
        try:
            for r in parts:
                _apply_partition(r, counts=counts, errors=errors, load=load, now=now, pipe=pipe)
            pipe.flush()
        except BaseException:
            pipe.abandon()  # the connection free for the rollback; the error raised is the first one
            raise
    return counts


class _Pipe:
    """The writes of one chunk of a load held back until the next chunk's current rows are read, then started
    without waiting (``bulk.copy_binary_start``), so PostgreSQL inserts one chunk's rows while this process merges
    the next chunk's readings (the merge is Python and numpy, the insert the database's: at N = 100,000 each was
    about 1.5 s of a 4.4 s load, one after the other). Chunks never share a (service point, device, channel, day):
    reading a chunk's current rows before the previous chunk's are superseded and inserted reads the same rows
    for its keys. Every write still lands in the load's one transaction, in chunk order."""

    def __init__(self, load: MeterDataLoad) -> None:
        self.load = load
        self.writes: tuple[np.ndarray, np.ndarray, list[dict]] | None = None  # the held-back chunk's
        self.inflight: bulk.StartedInsert | None = None

    def wait(self) -> None:
        """Wait for the COPY in flight (raising its error): the connection is free for a statement."""
        inflight, self.inflight = self.inflight, None
        if inflight is not None:
            inflight.finish()

    def hold(self, superseded: np.ndarray, superseded_days: np.ndarray, inserts: list[dict]) -> None:
        """Hold a chunk's writes (the rows to supersede, the ``interval_days_insert`` keyword sets)."""
        self.writes = (superseded, superseded_days, inserts)

    def start(self) -> None:
        """Start the held-back writes: the superseding UPDATE, then the COPYs, the last one left in flight."""
        writes, self.writes = self.writes, None
        if writes is None:
            return
        superseded, superseded_days, inserts = writes
        if superseded.size:
            _supersede(superseded, superseded_days)
        for kwargs in inserts:
            self.wait()
            self.inflight = interval_days_insert(**kwargs, load=self.load, start=True)

    def flush(self) -> None:
        """Write what is held back and wait for every COPY."""
        self.wait()
        self.start()
        self.wait()

    def abandon(self) -> None:
        """After an error: wait for the COPY in flight without raising (the transaction is rolled back)."""
        self.writes = None
        with contextlib.suppress(Exception):
            self.wait()


def _apply_partition(r: dict[str, np.ndarray], *, counts: dict[str, int], errors: _Errors, load: MeterDataLoad,
                     now: dt.datetime, pipe: _Pipe) -> None:
    """Validate (interval length per day, duplicates in the load) and merge readings whose days are all here."""
    n = r["sp"].size
    if n == 0:
        return
    minutes64 = r["minutes"].astype(np.int64)
    day = r["start"] // 86400
    slot = (r["start"] % 86400) // (minutes64 * 60)
    order = _lexsort_order(r["sp"], r["dev"], r["channel"], day, minutes64, slot, r["rows"])
    sp, dev, ch, dy, mn, sl = (a[order] for a in (r["sp"], r["dev"], r["channel"], day, minutes64, slot))
    kwh, rows = r["kwh"][order], r["rows"][order]
    del minutes64, day, slot, order  # peak memory is per partition: drop what is no longer needed as we go

    same_day = np.ones(n, dtype=bool)
    same_day[1:] = (sp[1:] == sp[:-1]) & (dev[1:] == dev[:-1]) & (ch[1:] == ch[:-1]) & (dy[1:] == dy[:-1])
    same_day[0] = False
    same_group = same_day & np.r_[False, mn[1:] == mn[:-1]]
    same_group[0] = False
    # one interval length per day: rows of a later group with another length are rejected
    day_id = np.cumsum(~same_day) - 1
    group_no = np.cumsum(~same_group) - 1
    day_first_group = group_no[np.flatnonzero(~same_day)]
    valid = group_no == day_first_group[day_id]
    for k in np.flatnonzero(~valid):
        first_minutes = mn[np.flatnonzero(~same_day)[day_id[k]]]
        errors.add(rows[k], "interval_minutes",
                   f"{mn[k]}-minute reading on a day already given in {first_minutes}-minute intervals")
    dup = np.zeros(n, dtype=bool)
    dup[1:] = same_group[1:] & (sl[1:] == sl[:-1]) & valid[1:]
    if dup.any():  # several rows of one key: identical values count once, different values reject them all
        heads = np.flatnonzero(~dup)
        run = np.cumsum(~dup) - 1
        given = kwh.copy()
        with np.errstate(invalid="ignore"):
            hi, lo = np.fmax.reduceat(kwh, heads), np.fmin.reduceat(kwh, heads)  # NaN = not provided: ignored
        conflict = (hi > lo)[run] & valid
        kwh[heads] = hi  # an identical run keeps its value even if its first row left the field empty
        for k in np.flatnonzero(conflict):
            head = heads[run[k]]
            other = head + 1 if k == head else head
            errors.add(rows[k], "interval_start",
                       f"conflicting duplicate of row {rows[other]}: {_kwh_text(given[k])} here, "
                       f"{_kwh_text(given[other])} there, for the same service point, device, channel and interval "
                       "start (neither is loaded)")
        valid &= ~(dup | conflict)
    del same_day, day_id, group_no, dup
    if not valid.all():
        sp, dev, ch, dy, mn, sl, kwh, rows = (a[valid] for a in (sp, dev, ch, dy, mn, sl, kwh, rows))
        n = sp.size
        if n == 0:
            return
        same_group = np.ones(n, dtype=bool)
        same_group[1:] = (sp[1:] == sp[:-1]) & (dev[1:] == dev[:-1]) & (ch[1:] == ch[:-1]) & (dy[1:] == dy[:-1]) \
            & (mn[1:] == mn[:-1])
        same_group[0] = False
    gid = np.cumsum(~same_group) - 1
    starts = np.flatnonzero(~same_group)
    g_sp, g_dev, g_ch, g_dy, g_mn = sp[starts], dev[starts], ch[starts], dy[starts], mn[starts]
    n_groups = starts.size
    for lo in range(0, n_groups, CHUNK_GROUPS):
        hi = min(n_groups, lo + CHUNK_GROUPS)
        row_lo, row_hi = starts[lo], (starts[hi] if hi < n_groups else n)
        _apply_chunk(g_sp[lo:hi], g_dev[lo:hi], g_ch[lo:hi], g_dy[lo:hi], g_mn[lo:hi],
                     gid[row_lo:row_hi] - lo, sl[row_lo:row_hi], kwh[row_lo:row_hi], rows[row_lo:row_hi],
                     counts=counts, errors=errors, load=load, now=now, pipe=pipe)


def _lexsort_order(*keys: np.ndarray) -> np.ndarray:
    """The order sorting rows by ``keys``, the first the most significant: ``np.lexsort`` of them reversed. When the
    last key (row numbers) does not decrease, a stable sort keeps it in order: the others, offset to their minimum,
    are packed into one int64 if their ranges fit in 63 bits and sorted once (one sort instead of seven)."""
    *major, last = keys
    if last.size > 1 and (last[1:] >= last[:-1]).all():
        packed = np.zeros(last.size, dtype=np.int64)
        bits = 0
        for key in reversed(major):  # the least significant first
            low = int(key.min())
            width = (int(key.max()) - low).bit_length()
            if bits + width > 63:
                break
            if width:
                packed |= (key.astype(np.int64) - low) << bits
            bits += width
        else:
            return np.argsort(packed, kind="stable")
    return np.lexsort(keys[::-1])


def _kwh_text(value: float) -> str:
    return "no value" if np.isnan(value) else f"{value:g} kWh"


def _fetch_current(g_sp, g_dy) -> list[tuple]:
    """Current rows (id, sp, device or 0, channel, day as days since 1970, minutes, version, values) of the chunk's
    (service point, day) pairs.

    PostgreSQL: each distinct pair is one probe of the ``(day, service_point_id)`` index, in a nested loop the
    planner cannot turn into a join (a LATERAL subquery behind ``OFFSET 0``): the cost is the chunk's, whatever the
    month partition holds and whatever its statistics say. A join of the chunk's service points with the day range
    let the planner choose: at N = 1,000,000 meters, with the month's statistics taken while it was empty, each of a
    load's 48 parts read every row of the day written so far (a day's load ran for over 20 minutes instead of 36 s),
    and with the statistics current, every row of the day (a re-load took 112 s instead of 21 s; BENCHMARKS.md,
    issue 20)."""
    d0 = int(g_dy.min())
    key = np.unique((np.asarray(g_sp, dtype=np.int64) << 20) | (np.asarray(g_dy, dtype=np.int64) - d0))
    sps, days = key >> 20, (key & ((1 << 20) - 1)) + d0
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(f"SELECT t.id, t.service_point_id, COALESCE(t.device_id, 0), t.channel, "
                        f"t.day - DATE '1970-01-01', t.interval_minutes, t.version, t.\"values\" "
                        f"FROM unnest(%s::bigint[], %s::int[]) AS k(sp, d) CROSS JOIN LATERAL ("
                        f"SELECT * FROM {IntervalDay._meta.db_table} i WHERE i.service_point_id = k.sp "
                        "AND i.day = DATE '1970-01-01' + k.d AND i.is_current AND i.day BETWEEN %s AND %s "
                        "OFFSET 0) t",
                        [bulk.int_array_literal(sps.tolist()), bulk.int_array_literal(days.tolist()),
                         _date(int(days.min())), _date(int(days.max()))])
            return cur.fetchall()
    wanted = set(zip(sps.tolist(), days.tolist(), strict=True))
    return [(pk, sp, dev or 0, ch, day.toordinal() - _EPOCH_ORDINAL, mn, ver, blob)
            for pk, sp, dev, ch, day, mn, ver, blob in
            IntervalDay.objects.filter(is_current=True, service_point_id__in=sorted(set(sps.tolist())),
                                       day__in=sorted({_date(int(d)) for d in days.tolist()})).values_list(
                "id", "service_point_id", "device_id", "channel", "day", "interval_minutes", "version", "values")
            if (sp, day.toordinal() - _EPOCH_ORDINAL) in wanted]


def _apply_chunk(g_sp, g_dev, g_ch, g_dy, g_mn, gid, sl, kwh, rows, *, counts, errors, load, now,
                 pipe: _Pipe) -> None:
    """Merge a chunk of groups (one per service point, device, channel, day and interval length) with their current
    rows: count new, unchanged and corrected readings; the changed days to supersede and their new versions are held
    in ``pipe``, written once the next chunk's current rows are read (``_Pipe``), as the previous chunk's are once
    this chunk's are."""
    m = g_sp.size
    pipe.wait()
    fetched = _fetch_current(g_sp, g_dy)
    pipe.start()  # the previous chunk's rows are inserted while this one is merged
    ex_id = np.zeros(m, dtype=np.int64)
    ex_version = np.zeros(m, dtype=np.int64)
    ex_row = np.full(m, -1, dtype=np.int64)  # index into fetched
    group_ok = np.ones(m, dtype=bool)
    if fetched:
        f_id, f_sp, f_dev, f_ch, f_day, f_mn, f_ver, _ = (list(c) for c in zip(*fetched, strict=True))
        f_ch = np.array([CHANNEL_NAMES.index(c) for c in f_ch], dtype=np.int64)
        f_idx, g_idx = _match(g_sp, g_dev, g_ch, g_dy, np.array(f_sp), np.array(f_dev), f_ch, np.array(f_day))
        f_mn = np.array(f_mn)
        same_len = f_mn[f_idx] == g_mn[g_idx]
        group_ok[g_idx[~same_len]] = False
        g_idx, f_idx = g_idx[same_len], f_idx[same_len]
        ex_id[g_idx] = np.array(f_id)[f_idx]
        ex_version[g_idx] = np.array(f_ver)[f_idx]
        ex_row[g_idx] = f_idx
    for i in np.flatnonzero(~group_ok):
        bad = gid == i
        for k in rows[bad][:5]:
            errors.add(k, "interval_minutes",
                       f"{int(g_mn[i])}-minute readings for a day stored in another interval length")
        errors.rejected += max(0, int(bad.sum()) - min(5, int(bad.sum())))

    batches: list[tuple[np.ndarray, np.ndarray]] = []  # (group indices, merged day values)
    for minutes in np.unique(g_mn):
        sel = np.flatnonzero((g_mn == minutes) & group_ok)
        if sel.size == 0:
            continue
        width = 1440 // int(minutes)
        local = np.full(m, -1, dtype=np.int64)
        local[sel] = np.arange(sel.size)
        rmask = local[gid] >= 0
        new = np.full((sel.size, width), np.nan)
        new[local[gid[rmask]], sl[rmask]] = kwh[rmask]
        old = np.full((sel.size, width), np.nan)
        has_old = np.flatnonzero(ex_row[sel] >= 0)
        if has_old.size:
            blobs = b"".join(fetched[int(ex_row[sel[j]])][7] for j in has_old)
            old[has_old] = np.frombuffer(blobs, dtype=intervals.DTYPE).reshape(has_old.size, width)
        provided = ~np.isnan(new)
        old_known = ~np.isnan(old)
        is_new = provided & ~old_known
        corrected = provided & old_known & (old != new)
        counts["new"] += int(is_new.sum())
        counts["unchanged"] += int((provided & old_known & (old == new)).sum())
        counts["corrected"] += int(corrected.sum())
        changed = np.flatnonzero((is_new | corrected).any(axis=1))
        if changed.size:
            batches.append((sel[changed], np.where(provided[changed], new[changed], old[changed])))
    if not batches:
        return
    superseded = np.concatenate([ex_id[idx] for idx, _ in batches])
    superseded_days = np.concatenate([g_dy[idx] for idx, _ in batches])[superseded > 0]
    superseded = superseded[superseded > 0]
    inserts = [{"sp": g_sp[idx], "dev": g_dev[idx], "ch": g_ch[idx], "day": g_dy[idx], "minutes": int(g_mn[idx[0]]),
                "values": values, "version": ex_version[idx] + 1} for idx, values in batches]
    pipe.hold(superseded, superseded_days, inserts)


def _months(start: np.ndarray) -> set[int]:
    """The UTC months (months since 1970-01) of interval starts (epoch seconds)."""
    if not start.size:
        return set()
    days = start // 86400
    first, last = int(days.min()), int(days.max())
    # the distinct days first (a count per day when they span a few years: no sort of every reading)
    days = first + np.flatnonzero(np.bincount(days - first)) if last - first < 4096 else np.unique(days)
    return set(np.unique(days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)).tolist())


def _month_first(month: int) -> dt.date:
    return dt.date(1970 + month // 12, month % 12 + 1, 1)


def _date(days_since_1970: int) -> dt.date:
    return dt.date.fromordinal(_EPOCH_ORDINAL + int(days_since_1970))


def _supersede(ids: np.ndarray, days: np.ndarray) -> None:
    """Mark the rows ``ids`` (of UTC days ``days``, days since 1970) no longer current. On PostgreSQL one
    ``UPDATE ... FROM unnest(ids, days)`` joined on the partition key too, bounded by the days' range, so only the
    months concerned are visited (the primary key is (id, day))."""
    if connection.vendor != "postgresql":
        bulk.set_fields(IntervalDay, ids.tolist(), {"is_current": False})
        return
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {IntervalDay._meta.db_table} AS t SET is_current = false "
                    "FROM unnest(%s::bigint[], %s::date[]) AS k(id, day) "
                    "WHERE t.id = k.id AND t.day = k.day AND t.day BETWEEN %s AND %s",
                    [bulk.int_array_literal(ids.tolist()), "{" + ",".join(_date(d).isoformat() for d in days) + "}",
                     _date(days.min()), _date(days.max())])


def _match(g_sp, g_dev, g_ch, g_dy, f_sp, f_dev, f_ch, f_day) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fetched, group) of fetched rows whose (sp, device, channel, day) is one of the chunk's groups.

    Groups are sorted by that key: one ``searchsorted`` on a packed int64 key when the numbers fit, else a dict.
    """
    d0 = int(g_dy.min())
    if (int(g_sp.max()) < 2**26 and int(g_dev.max()) < 2**20 and int(np.max(f_sp)) < 2**26
            and int(np.max(f_dev)) < 2**20 and int(g_dy.max()) - d0 < 2**16):
        def pack(sp, dev, ch, day):
            key = (np.asarray(sp, dtype=np.int64) << 37) | (np.asarray(dev, dtype=np.int64) << 17)
            return key | (np.asarray(ch, dtype=np.int64) << 16) | (np.asarray(day, dtype=np.int64) - d0)

        packed_g, packed_f = pack(g_sp, g_dev, g_ch, g_dy), pack(f_sp, f_dev, f_ch, f_day)
        inside = (f_day >= d0) & (f_day - d0 < 2**16)
        pos = np.searchsorted(packed_g, packed_f)
        pos_c = np.minimum(pos, packed_g.size - 1)
        hit = np.flatnonzero(inside & (pos < packed_g.size) & (packed_g[pos_c] == packed_f))
        return hit, pos[hit]
    index = {(int(a), int(b), int(c), int(d)): i for i, (a, b, c, d) in enumerate(zip(g_sp, g_dev, g_ch, g_dy,
                                                                                      strict=True))}
    pairs = [(k, index[key]) for k, key in enumerate(zip(f_sp.tolist(), f_dev.tolist(), f_ch.tolist(),
                                                          f_day.tolist(), strict=True)) if key in index]
    return (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64))


_PG_EPOCH_DAYS = (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_COPY_COLUMNS = ["service_point_id", "device_id", "channel", "day", "interval_minutes", "values", "version",
                 "is_current", "received_at", "load_id"]


def interval_days_insert(*, sp, dev, ch, day, minutes: int, values: np.ndarray, version,
                         load: MeterDataLoad, start: bool = False) -> bulk.StartedInsert | None:
    """Insert new current ``IntervalDay`` versions: one PostgreSQL binary COPY of rows encoded with numpy
    (``cpm.base.bulk.copy_binary``; ``bulk.insert_objects`` elsewhere). The write step of the loads above, after
    validation and merging; the benchmark generator writes its seeded days with it. Nothing is checked here: the
    days must not already have a current version.

    ``sp``, ``dev`` (0 = no device), ``ch`` (0 delivered, 1 received), ``day`` (days since 1970-01-01), ``version``:
    int arrays of n; ``values`` ``[n, 1440 / minutes]`` float64 kWh (NaN = missing); ``received_at`` and the load
    reference come from ``load``. The partitions of the days' months are made if missing
    (``partitions.ensure_months``: the loads above made them already, before touching the table).
    ``start``: return the COPY still being inserted (``bulk.copy_binary_start``; the caller finishes it before the
    connection's next statement) instead of waiting for it; None when nothing is left in flight (SQLite).
    """
    received_at = load.created_at  # receipt time of the data = when the load was received, not when it ran
    n, width = values.shape
    if not bulk.is_postgresql():
        bulk.insert_objects(IntervalDay, [
            IntervalDay(service_point_id=int(sp[k]), device_id=int(dev[k]) or None, channel=CHANNEL_NAMES[ch[k]],
                        day=dt.date.fromordinal(_EPOCH_ORDINAL + int(day[k])), interval_minutes=minutes,
                        values=intervals.encode(values[k]), version=int(version[k]), is_current=True,
                        received_at=received_at, load=load) for k in range(n)])
        return None
    if n:
        partitions.ensure_months(_month_first(m) for m in _months(np.asarray(day, dtype=np.int64) * 86400))
    received_us = int((received_at - _PG_EPOCH).total_seconds() * 1_000_000)
    parts = []
    for has_dev in (False, True):
        for c in (0, 1):
            sel = np.flatnonzero(((dev > 0) == has_dev) & (ch == c))
            if not sel.size:
                continue
            name = CHANNEL_NAMES[c].encode()
            fields = [("nf", ">i2"), ("l0", ">i4"), ("sp", ">i8"), ("l1", ">i4")]
            fields += [("dev", ">i8")] if has_dev else []
            fields += [("l2", ">i4"), ("ch", f"S{len(name)}"), ("l3", ">i4"), ("day", ">i4"), ("l4", ">i4"),
                       ("mn", ">i2"), ("l5", ">i4"), ("vals", "<f8", (width,)), ("l6", ">i4"), ("ver", ">i4"),
                       ("l7", ">i4"), ("cur", "u1"), ("l8", ">i4"), ("rcv", ">i8"), ("l9", ">i4"), ("load", ">i8")]
            rec = np.empty(sel.size, dtype=np.dtype(fields))
            rec["nf"] = 10
            rec["l0"], rec["sp"] = 8, sp[sel]
            if has_dev:
                rec["l1"], rec["dev"] = 8, dev[sel]
            else:
                rec["l1"] = -1  # NULL
            rec["l2"], rec["ch"] = len(name), name
            rec["l3"], rec["day"] = 4, day[sel] - _PG_EPOCH_DAYS
            rec["l4"], rec["mn"] = 2, minutes
            rec["l5"], rec["vals"] = 8 * width, values[sel]
            rec["l6"], rec["ver"] = 4, version[sel]
            rec["l7"], rec["cur"] = 1, 1
            rec["l8"], rec["rcv"] = 8, received_us
            rec["l9"], rec["load"] = 8, load.pk
            parts.append(rec.tobytes())
    if start:
        return bulk.copy_binary_start(IntervalDay, _COPY_COLUMNS, parts)
    bulk.copy_binary(IntervalDay, _COPY_COLUMNS, parts)
    return None


def meter_data_load_fail(*, load_id: int, error: str, now: dt.datetime, actor) -> None:
    """A RUNNING load whose job failed outside it (the sweeper found its worker dead): FAILED with the error, so
    ``meter_data_load_retry`` can run it again. A load in any other status is left as it is. An internal step of
    the job system (``cpm.base.jobs.job_failed``): no capability check."""
    load = MeterDataLoad.objects.select_for_update().filter(pk=load_id, status=Status.RUNNING).first()
    if load is not None:
        _fail(load, error, now=now, actor=actor, field="load")


def _fail(load: MeterDataLoad, message: str, *, now: dt.datetime, actor, field: str = "file") -> MeterDataLoad:
    load.errors = [{"row": None, "field": field, "message": message}]
    load.finished_at = now
    load.save(update_fields=["errors", "finished_at"])
    return transition(obj=load, to=Status.FAILED, allowed=LOAD_TRANSITIONS, now=now, actor=actor,
                      reason=message[:200])


def _finish(load: MeterDataLoad, counts: dict[str, int], errors: _Errors, *, now: dt.datetime, actor) -> MeterDataLoad:
    load.readings_new, load.readings_unchanged = counts["new"], counts["unchanged"]
    load.readings_corrected, load.readings_rejected = counts["corrected"], errors.rejected
    load.errors = errors.sorted_items()
    load.finished_at = now
    load.save(update_fields=["readings_new", "readings_unchanged", "readings_corrected", "readings_rejected",
                             "errors", "finished_at"])
    to = Status.COMPLETED_WITH_ERRORS if errors.rejected else Status.COMPLETED
    return transition(obj=load, to=to, allowed=LOAD_TRANSITIONS, now=now, actor=actor, reason=load.summary)
