"""Server-rendered charts (matplotlib SVG, no scripts, no CDN) for event settlements.

What is drawn is computed first (``event_settlement_chart_data``, plain values a test can read), then rendered
(``render_step_chart``, shared with the dashboard's event page):

- intervals are half-open ``[start, end)``: each series is drawn as steps over the interval EDGES, so the last
  interval is drawn up to its end (the event's end for an event-window settlement), never one interval short;
- device telemetry ("no load baseline", e.g. home batteries, ``measurement.METHOD_DEVICE``): the stored actual kW
  is the device's discharge and its baseline 0; it is drawn as the device's output against its own baseline (idle,
  0 kW), discharge below it (negative kW), so the drop from the baseline is the kW delivered, as for a meter's
  load, and never as a load rising above a zero baseline.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from matplotlib.dates import num2date
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

METHOD_DEVICE = "device-telemetry"  # ``settlement.measurement.METHOD_DEVICE`` (its inputs' "method")
DEVICE_BASELINE = "Device baseline (idle, 0 kW)"
DEVICE_OUTPUT = "Device output (discharge below 0 kW)"
STYLES = {"Baseline": ("#888888", "--"), "Adjusted baseline": ("#1f77b4", "-"), "Actual": ("#d62728", "-"),
          DEVICE_BASELINE: ("#1f77b4", "--"), DEVICE_OUTPUT: ("#2ca02c", "-")}


@dataclass
class StepChart:
    """A step chart over interval edges: ``edges`` are ``n + 1`` local wall-clock times (naive, in ``zone``) of
    ``n`` half-open intervals; each series has ``n`` values (``None`` = unknown) drawn from ``edges[i]`` to
    ``edges[i + 1]``. ``window``: the event's local start and end (shaded); ``counted``: the local span of the
    intervals that count (shaded), or None."""

    title: str
    zone: str
    edges: list[dt.datetime]
    series: dict[str, list[float | None]]
    window: tuple[dt.datetime, dt.datetime]
    ylabel: str = "kW"
    counted: tuple[dt.datetime, dt.datetime] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def x_range(self) -> tuple[dt.datetime, dt.datetime]:
        return self.edges[0], self.edges[-1]


def local_edges(first: dt.datetime, minutes: int, n: int, tz: ZoneInfo) -> list[dt.datetime]:
    """``n + 1`` interval edges from the UTC instant ``first`` every ``minutes``, as naive local wall-clock times
    (a DST change shows as the clock shows it)."""
    return [(first + dt.timedelta(minutes=minutes * i)).astimezone(tz).replace(tzinfo=None) for i in range(n + 1)]


def device_series(actual_kw: list[float | None]) -> dict[str, list[float | None]]:
    """Device telemetry drawn against the device's own baseline: 0 kW idle, discharge as negative kW."""
    return {DEVICE_BASELINE: [0.0] * len(actual_kw),
            DEVICE_OUTPUT: [None if v is None else (-float(v) if v else 0.0) for v in actual_kw]}


def event_settlement_chart_data(settlement) -> StepChart | None:
    """What the settlement's chart draws, from ``settlement.inputs`` (as written by
    ``services._settlement_record``: ``start`` or ``day_start`` (UTC ISO), ``interval_minutes``, ``baseline_kw``,
    ``adjusted_baseline_kw``, ``actual_kw``, ``participated`` [first, count], ``method``). None without inputs."""
    inputs = settlement.inputs or {}
    first_start = inputs.get("start") or inputs.get("day_start")  # event-window values (engine), or a whole day
    actual = inputs.get("actual_kw")
    if not first_start or not actual:
        return None
    tz = ZoneInfo(settlement.program.time_zone)
    minutes = inputs["interval_minutes"]
    n = len(actual)
    edges = local_edges(dt.datetime.fromisoformat(first_start), minutes, n, tz)
    event = settlement.event
    window = (event.start.astimezone(tz).replace(tzinfo=None), event.end.astimezone(tz).replace(tzinfo=None))
    if inputs.get("method") == METHOD_DEVICE:
        series, ylabel = device_series(actual), "kW (device output; discharge < 0)"
    else:
        series = {label: [None if v is None else float(v) for v in inputs.get(key) or [None] * n]
                  for label, key in (("Baseline", "baseline_kw"), ("Adjusted baseline", "adjusted_baseline_kw"),
                                     ("Actual", "actual_kw"))}
        ylabel = "kW"
    first, count = (inputs.get("participated") or [0, 0])[:2]
    counted = (edges[first], edges[min(first + count, n)]) if count else None
    return StepChart(title=f"{event.name}: {settlement.event_day} ({settlement.program.time_zone})",
                     zone=settlement.program.time_zone, edges=edges, series=series, window=window, ylabel=ylabel,
                     counted=counted)


class _ElapsedAxis:
    """The x axis of a chart: elapsed time from its first edge, drawn from that edge's local wall clock, so each
    interval is as wide as it lasts, and each position labelled with the local clock it stands for.

    On a day without a DST change the positions are the local wall-clock times themselves. On the 25-hour autumn
    day the wall clock repeats an hour (01:00 PDT, 01:00 PST): drawn on the clock, that interval had no width and
    its reading vanished; on the 23-hour spring day the clock skips an hour and the interval 01:00 PST - 03:00 PDT
    was drawn two hours wide. The naive local times carry ``fold`` (the second 01:00 is ``fold=1``), which tells
    the two occurrences apart. Where the chart crosses a change, the labels carry the zone's abbreviation."""

    def __init__(self, chart: StepChart):
        self.tz = ZoneInfo(chart.zone)
        self.origin = chart.edges[0]
        self.origin_instant = self._instant(self.origin)
        names = {self._instant(e).astimezone(self.tz).tzname() for e in chart.edges}
        self.fmt = "%H:%M %Z" if len(names) > 1 else "%H:%M"

    def _instant(self, local: dt.datetime) -> dt.datetime:
        return local.replace(tzinfo=self.tz).astimezone(dt.UTC)

    def x(self, local: dt.datetime) -> dt.datetime:
        """The drawing position of a naive local wall-clock time (its ``fold`` picks a repeated time)."""
        return self.origin + (self._instant(local) - self.origin_instant)

    def label(self, value, _pos=None) -> str:
        position = num2date(value).replace(tzinfo=None)
        return (self.origin_instant + (position - self.origin)).astimezone(self.tz).strftime(self.fmt)


def step_chart_figure(chart: StepChart, *, figsize=(8, 3.4)) -> Figure:
    """The matplotlib figure of a ``StepChart``: each series as post-steps over its edges (the last value repeated
    at the last edge so the final interval is drawn to its end), the event window shaded, the legend outside the
    plot, hours as local ``HH:MM`` (the day and zone in the title and axis label). The axis is elapsed time
    (``_ElapsedAxis``): on a DST day each interval is as wide as it lasts, the ticks read the local clock."""
    fig = Figure(figsize=figsize, dpi=96)
    ax = fig.subplots()
    axis = _ElapsedAxis(chart)
    edges = [axis.x(e) for e in chart.edges]
    lows, highs = [0.0], [0.0]
    for label, values in chart.series.items():
        ys = [float("nan") if v is None else v for v in values]
        known = [v for v in values if v is not None]
        lows.append(min(known, default=0.0))
        highs.append(max(known, default=0.0))
        color, style = STYLES.get(label, ("#000000", "-"))
        ax.step(edges, [*ys, ys[-1]], where="post", label=label, color=color, linestyle=style)
    ax.axvspan(*(axis.x(t) for t in chart.window), color="#ffdd57", alpha=0.3, label="Event window")
    if chart.counted:
        ax.axvspan(*(axis.x(t) for t in chart.counted), color="#2ca02c", alpha=0.12, label="Counted intervals")
    span = (max(highs) - min(lows)) or 1.0
    ax.set_ylim(min(lows) - 0.1 * span if min(lows) < 0 else 0, max(highs) + 0.1 * span if max(highs) > 0 else 0.5)
    ax.axhline(0, color="#444444", linewidth=0.6)
    ax.set_xlim(edges[0], edges[-1])
    ax.xaxis.set_major_formatter(FuncFormatter(axis.label))
    ax.set_ylabel(chart.ylabel, fontsize=8)
    ax.set_xlabel(f"Local time ({chart.zone})", fontsize=8)
    ax.set_title(chart.title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def render_step_chart(chart: StepChart) -> str:
    """The SVG (``<svg ...>``, no XML prologue, no date metadata) of ``step_chart_figure(chart)``."""
    fig = step_chart_figure(chart)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def event_settlement_chart_svg(settlement) -> str:
    """An SVG of baseline, adjusted baseline and actual kW (device telemetry: the device's output against its own
    baseline) over the settlement's intervals, the event window and the counted intervals shaded; ``""`` when there
    are no inputs. Hours on the x axis are local wall-clock hours in the program's zone."""
    chart = event_settlement_chart_data(settlement)
    return render_step_chart(chart) if chart else ""
