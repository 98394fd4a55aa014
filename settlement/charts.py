"""Server-rendered charts (matplotlib SVG, no scripts, no CDN) for event settlements."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from matplotlib.figure import Figure


def event_settlement_chart_svg(settlement) -> str:
    """An SVG of baseline, adjusted baseline and actual kW over the local event day, the event window shaded.

    Reads ``settlement.inputs`` (as written by ``services._settlement_record``); returns ``""`` when there are none.
    Hours on the x axis are local wall-clock hours in the program's zone.
    """
    inputs = settlement.inputs or {}
    first_start = inputs.get("start") or inputs.get("day_start")  # event-window values (engine), or a whole day
    if not first_start or not inputs.get("actual_kw"):
        return ""
    tz = ZoneInfo(settlement.program.time_zone)
    minutes = inputs["interval_minutes"]
    start = dt.datetime.fromisoformat(first_start)
    n = len(inputs["actual_kw"])
    x = [(start + dt.timedelta(minutes=minutes * i)).astimezone(tz).replace(tzinfo=None) for i in range(n)]

    def series(key):
        return [float("nan") if v is None else v for v in inputs.get(key, [])]

    fig = Figure(figsize=(8, 3.2), dpi=96)
    ax = fig.subplots()
    ax.step(x, series("baseline_kw"), where="post", label="Baseline", color="#888888", linestyle="--")
    ax.step(x, series("adjusted_baseline_kw"), where="post", label="Adjusted baseline", color="#1f77b4")
    ax.step(x, series("actual_kw"), where="post", label="Actual", color="#d62728")
    first, count = inputs.get("participated", [0, 0])
    ev_start = settlement.event.start.astimezone(tz).replace(tzinfo=None)
    ev_end = settlement.event.end.astimezone(tz).replace(tzinfo=None)
    ax.axvspan(ev_start, ev_end, color="#ffdd57", alpha=0.3, label="Event window")
    if count:
        ax.axvspan(x[first], x[min(first + count, n - 1)] if first + count < n else ev_end, color="#2ca02c",
                   alpha=0.12, label="Counted intervals")
    ax.set_ylabel("kW")
    ax.set_title(f"{settlement.event.name}: {settlement.event_day} ({settlement.program.time_zone})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]
