"""Where the demo's interval data comes from (no database access here).

- Real: every Green Button (ESPI XML) file in the Green Button directory, one service point each, loaded later
  through the Green Button importer (``settlement.meterdata.loaders.meter_data_load_submit``).
- Synthetic-derived: seeded copies of the real annual files, each scaled (x0.6 to x1.5), shifted by whole days
  (-3 to +3) and given +/-5 % hourly noise, so the thermostat fleet is larger than six homes while keeping real load
  shapes. Labelled "synthetic-derived" everywhere.
- Synthetic: without any file, a seeded fleet of hourly loads for 2011 (base load, evening peak, air conditioning
  driven by one shared synthetic summer temperature series with heat waves). Labelled "synthetic" everywhere.

All series are hourly kWh with UTC interval starts (epoch seconds).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

REAL = "real"
DERIVED = "synthetic-derived"
SYNTHETIC = "synthetic"
HOUR = 3600


@dataclass
class LoadSeries:
    """Hourly interval data of one future service point."""

    label: str
    origin: str  # REAL, DERIVED or SYNTHETIC
    start: np.ndarray  # int64 UTC epoch seconds of each interval start
    kwh: np.ndarray  # float64 kWh per interval
    minutes: int = 60
    path: Path | None = None  # real files: loaded through the Green Button importer
    zone_hint: str = ""  # the zone the file says it is in (LocalTimeParameters), for the narrative only

    def covers(self, first: dt.datetime, last: dt.datetime) -> bool:
        """True if the series has readings from ``first`` to ``last`` (aware)."""
        return bool(self.start.size) and self.start.min() <= first.timestamp() and self.start.max() >= last.timestamp()

    @property
    def period(self) -> str:
        if not self.start.size:
            return "no readings"
        first = dt.datetime.fromtimestamp(int(self.start.min()), dt.UTC)
        last = dt.datetime.fromtimestamp(int(self.start.max()), dt.UTC)
        return f"{first:%Y-%m-%d} to {last:%Y-%m-%d} UTC, {self.start.size} readings of {self.minutes} min"

    def hourly(self) -> dict[int, float]:
        """{UTC epoch hour start: kWh} (finer intervals summed into the hour)."""
        out: dict[int, float] = {}
        for s, v in zip((self.start // HOUR * HOUR).tolist(), self.kwh.tolist(), strict=True):
            out[s] = out.get(s, 0.0) + v
        return out


def find_green_button_files(directory: Path | None) -> list[Path]:
    """The ``*.xml`` files of ``directory`` (sorted by name); none when it does not exist."""
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".xml" and p.is_file())


def _zone_hint(tz_offset_s: int | None) -> str:
    names = {-8 * HOUR: "Pacific", -7 * HOUR: "Mountain", -6 * HOUR: "Central", -5 * HOUR: "Eastern"}
    return names.get(tz_offset_s, "") if tz_offset_s is not None else ""


def read_green_button(path: Path) -> list[LoadSeries]:
    """The delivered-energy readings of each usage point of a Green Button file (the parser of the importer)."""
    from settlement.meterdata.greenbutton import parse_green_button

    data = parse_green_button(path.read_bytes())
    out = []
    for up in data.usage_points:
        keep = up.channel == 0
        if not keep.any():
            continue
        order = np.argsort(up.start[keep], kind="stable")
        minutes = int(np.bincount(up.minutes[keep].astype(np.int64)).argmax())
        out.append(LoadSeries(label=f"{up.title or path.stem} ({path.name})", origin=REAL,
                              start=up.start[keep][order].astype(np.int64), kwh=up.kwh[keep][order].astype(float),
                              minutes=minutes, path=path, zone_hint=_zone_hint(data.tz_offset_s)))
    return out


def derived_copy(base: LoadSeries, rng: np.random.Generator) -> LoadSeries:
    """A seeded scaled / day-shifted / noisy copy of an hourly ``base`` series (label says how it was made)."""
    scale = float(rng.uniform(0.6, 1.5))
    shift = int(rng.integers(-3, 4))
    noise = rng.normal(1.0, 0.05, size=base.kwh.size).clip(0.85, 1.15)
    kwh = np.round(np.roll(base.kwh, shift * 24) * scale * noise, 4)
    short = base.label.split(" (")[0]
    return LoadSeries(label=f"{DERIVED} from {short}: x{scale:.2f}, shifted {shift:+d} d, +/-5% noise",
                      origin=DERIVED, start=base.start.copy(), kwh=kwh, minutes=base.minutes)


def synthetic_weather(rng: np.random.Generator, year: int = 2011) -> np.ndarray:
    """Daily maximum temperature (deg C) of a synthetic inland-California year: seasonal curve plus heat waves."""
    days = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
    doy = np.arange(days)
    seasonal = 22.0 + 11.0 * np.sin(2 * np.pi * (doy - 110) / 365.0)
    anomaly = np.zeros(days)
    for i in range(1, days):  # AR(1) day-to-day weather
        anomaly[i] = 0.8 * anomaly[i - 1] + rng.normal(0, 2.0)
    return seasonal + anomaly


def synthetic_year(rng: np.random.Generator, weather: np.ndarray, index: int, *, year: int = 2011,
                   tz: str = "America/Los_Angeles") -> LoadSeries:
    """A seeded hourly load for a home in ``tz``: base load, evening peak, and cooling above 24 deg C."""
    zone = ZoneInfo(tz)
    first = dt.datetime(year, 1, 1, tzinfo=zone).astimezone(dt.UTC)
    last = dt.datetime(year + 1, 1, 1, tzinfo=zone).astimezone(dt.UTC)
    n = int((last - first).total_seconds() // HOUR)
    start = int(first.timestamp()) + HOUR * np.arange(n, dtype=np.int64)
    local = [dt.datetime.fromtimestamp(int(s), zone) for s in start.tolist()]
    hour = np.array([t.hour for t in local])
    doy = np.array([t.timetuple().tm_yday - 1 for t in local])
    base = rng.uniform(0.3, 0.7)
    evening = rng.uniform(0.3, 0.9)
    ac_kw_per_deg = rng.uniform(0.12, 0.35)
    shape = base + evening * np.exp(-((hour - 19.0) ** 2) / 6.0) + 0.2 * np.exp(-((hour - 8.0) ** 2) / 3.0)
    afternoon = np.clip(np.sin(np.pi * (hour - 9) / 14.0), 0, None)  # cooling peaks mid/late afternoon
    cooling = ac_kw_per_deg * np.clip(weather[doy] - 24.0, 0, None) * afternoon
    kwh = np.round((shape + cooling) * rng.normal(1.0, 0.08, size=n).clip(0.7, 1.3), 4)
    return LoadSeries(label=f"{SYNTHETIC} home #{index} (seeded)", origin=SYNTHETIC, start=start, kwh=kwh)
