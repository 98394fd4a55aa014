"""A small writer of kW-drop files (``settlement.meterdata.kwdrop``: EventId, ProgramId, SPId, ActualStartTime,
ActualEndTime, IntervalSize(Seconds), MaxKwDrop, KwDrop1..n) for tests: records from cpm rows or from plain text."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

HEADER = "EventId,ProgramId,SPId,ActualStartTime,ActualEndTime,IntervalSize(Seconds),MaxKwDrop"


def kw_text(value: float | str | None) -> str:
    """A kW value as a DERMS writes it (two decimals); None = blank (not reported); text is written as is."""
    if isinstance(value, str):
        return value
    return "" if value is None else f"{value:.2f}"


def record(*, event=None, service_point=None, values: list[float | str | None], interval_seconds: int = 900,
           start: dt.datetime | str | None = None, end: dt.datetime | str | None = None, max_kw: str | None = "auto",
           event_key: str | None = None, program_key: str | None = None, sp_key: str | None = None,
           tz: str | None = None) -> str:
    """One record line. Keys default to the event's id, its program's code and the service point's id; times to
    the event window unless given (aware datetimes are written in ``tz``, default the program's zone, with their
    offset; text is written as is); ``end`` defaults to start + len(values) intervals; ``max_kw="auto"`` writes the
    largest value (blank when none), None a blank, text as is."""
    zone = ZoneInfo(tz or (event.program.time_zone if event is not None else "America/Los_Angeles"))
    start = start if start is not None else event.start
    if end is None and isinstance(start, dt.datetime):
        end = start + dt.timedelta(seconds=interval_seconds * len(values))

    def when(value) -> str:
        return value.astimezone(zone).isoformat() if isinstance(value, dt.datetime) else str(value)

    if max_kw == "auto":
        reported = [v for v in values if isinstance(v, int | float)]
        max_kw = kw_text(max(reported)) if reported else ""
    fields = [event_key if event_key is not None else str(event.pk),
              program_key if program_key is not None else event.program.code,
              sp_key if sp_key is not None else service_point.service_point_id,
              when(start), when(end), str(interval_seconds), max_kw or "", *(kw_text(v) for v in values)]
    return ",".join(fields)


def kw_drop_file(lines: list[str], *, header: bool = True, width: int | None = None) -> bytes:
    """The file: the header (with KwDrop1..``width``, default the longest record's count) and the lines."""
    if header:
        width = width or max((len(line.split(",")) - 7 for line in lines), default=0)
        lines = [HEADER + "".join(f",KwDrop{i}" for i in range(1, width + 1)), *lines]
    return ("\n".join(lines) + "\n").encode()
