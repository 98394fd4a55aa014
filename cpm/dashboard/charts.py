"""Server-rendered SVG charts of the dashboard and the event page (matplotlib; no script, no CDN)."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from matplotlib.figure import Figure

from settlement.charts import StepChart, device_series, render_step_chart


def _svg(fig: Figure) -> str:
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def events_chart_svg(rows: list[tuple[str, float | None, float]], *, title: str) -> str:
    """Grouped bars per event: forecast kW (grey; none when not stored) and delivered kW drop (green)."""
    if not rows:
        return ""
    fig = Figure(figsize=(6.4, 2.6), dpi=96)
    ax = fig.subplots()
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r[1] or 0 for r in rows], width=0.4, color="#9aa5b1", label="Forecast kW")
    ax.bar([x + 0.2 for x in xs], [r[2] for r in rows], width=0.4, color="#2ca02c", label="Delivered kW drop")
    ax.set_xticks(list(xs), [r[0][:18] for r in rows], fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("kW")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    return _svg(fig)


def season_chart_svg(rows: list[tuple[str, float, float | None]], *, title: str) -> str:
    """Horizontal bars of season-to-date use against each limit: (label, used, limit or None), as % of the limit
    (no limit: drawn at 0 with the raw value in the label); no chart when no row has a limit."""
    if not rows or not any(limit for _, _, limit in rows):  # nothing to measure against: the table says it
        return ""
    fig = Figure(figsize=(6.4, 0.5 + 0.45 * len(rows)), dpi=96)
    ax = fig.subplots()
    labels, values = [], []
    for label, used, limit in rows:
        labels.append(f"{label}: {used:g} / {limit:g}" if limit else f"{label}: {used:g} (no limit)")
        values.append(100.0 * used / limit if limit else 0.0)
    ax.barh(labels, values, color=["#d62728" if v >= 100 else "#1f77b4" for v in values])
    ax.axvline(100, color="#616e7c", linestyle="--", linewidth=1)
    ax.set_xlim(0, max(110.0, *values))
    ax.set_xlabel("% of the season's limit")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _svg(fig)


def fleet_chart_data(starts: list[dt.datetime], series: dict[str, list[float | None]], *, tz: ZoneInfo,
                     window: tuple[dt.datetime, dt.datetime], title: str, device_telemetry: bool = False,
                     interval_minutes: int | None = None) -> StepChart | None:
    """What the event page's fleet chart draws: the summed series over the intervals starting at ``starts`` (UTC,
    half-open, ``interval_minutes`` long: by default the gap between the first two, else 60), drawn to the end edge
    of the last interval and at least to the event's end (``window[1]``). ``device_telemetry``: the fleet's device
    output against its own baseline (discharge below 0 kW, ``settlement.charts.device_series``). None without
    intervals."""
    if not starts:
        return None
    step = dt.timedelta(minutes=interval_minutes) if interval_minutes else (
        starts[1] - starts[0] if len(starts) > 1 else dt.timedelta(hours=1))
    end = max(window[1], starts[-1] + step)
    local = [s.astimezone(tz).replace(tzinfo=None) for s in starts]
    edges = [*local, end.astimezone(tz).replace(tzinfo=None)]
    values = dict(series)
    if device_telemetry:
        values = device_series(series.get("Actual") or [None] * len(starts))
    return StepChart(title=title, zone=tz.key, edges=edges, series=values,
                     window=(window[0].astimezone(tz).replace(tzinfo=None),
                             window[1].astimezone(tz).replace(tzinfo=None)),
                     ylabel="kW (fleet device output; discharge < 0)" if device_telemetry else "kW (fleet)")


def fleet_chart_svg(starts: list[dt.datetime], series: dict[str, list[float | None]], *, tz: ZoneInfo,
                    window: tuple[dt.datetime, dt.datetime], title: str, device_telemetry: bool = False) -> str:
    """Fleet baseline / adjusted baseline / actual kW per interval (local wall-clock hours), the event window
    shaded; the last interval is drawn to its end (``fleet_chart_data``)."""
    chart = fleet_chart_data(starts, series, tz=tz, window=window, title=title, device_telemetry=device_telemetry)
    return render_step_chart(chart) if chart else ""
