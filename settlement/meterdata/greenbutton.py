"""Green Button (NAESB REQ.21 ESPI) XML: parse an Atom feed of interval data into reading arrays (no Django).

What is read (namespaces Atom ``http://www.w3.org/2005/Atom`` and ESPI ``http://naesb.org/espi``):

- ``UsagePoint`` entries (their ``self`` link and title) own ``MeterReading`` entries (``up`` link below the usage
  point); a ``MeterReading`` names its ``ReadingType`` through a ``related`` link; ``IntervalBlock`` entries belong
  to the ``MeterReading`` above their ``up`` link.
- ``ReadingType``: ``uom`` (72 = Wh is the energy unit accepted; the blocks of a ReadingType in another unit, a
  gas meter's therms or a demand in W, are left out and named in ``UsagePointReadings.skipped``: a file holding
  the electric and the gas meter loads the electricity), ``powerOfTenMultiplier`` (value x 10^n),
  ``intervalLength`` (seconds; each reading's own ``duration`` wins), ``flowDirection`` (1 = forward -> delivered,
  19 = reverse -> received, 4 = net -> delivered with negative values kept; anything else is an error). A usage
  point whose file also gives forward or reverse readings keeps those: its net readings are not stored (net is
  forward minus reverse; stored as delivered too they conflicted with the forward ones), and one that disagrees
  with the forward and reverse readings of its interval is a row error.
- ``IntervalReading``: ``timePeriod/start`` (UTC epoch seconds), ``timePeriod/duration`` (seconds), ``value``.
- ``LocalTimeParameters``: ``tzOffset`` and ``dstOffset`` (seconds), reported for information (times are UTC).

kWh = value x 10^powerOfTenMultiplier / 1000. Source: NAESB REQ.21 ESPI; Green Button Alliance sample data.

The parser never raises on a bad reading: an ``IntervalReading`` whose ``value`` is not a number (the text ``NaN``
included, and ``1_500``: Python reads a digit separator, XML Schema's integers have none, ``cpm.base.numbers``),
infinite, negative on a forward or reverse ReadingType (only net, flowDirection 4, may be negative), or
whose ``timePeriod`` is missing, off the 5/15/30/60-minute grid or outside ``years`` is a row error naming its
position (``IntervalReading`` n of the file, in ``IntervalBlock`` m); the other readings load. A problem of the file
as a whole (not XML, not an Atom feed, a ReadingType it cannot read) raises ``GreenButtonError`` in words. The
per-interval kWh limit depends on the service point: the loader checks it.
"""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from cpm.base.numbers import to_float, to_int

from .checks import YEARS, epoch_range

ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"
FLOW_DIRECTIONS = {1: 0, 4: 0, 19: 1}  # ESPI flowDirection -> channel code (0 delivered, 1 received)
UOM_WH = 72
POWERS = range(-12, 13)  # powerOfTenMultiplier accepted


class GreenButtonError(ValueError):
    """The file cannot be loaded as a whole (not ESPI XML, unknown flow direction, unsupported unit)."""


@dataclass
class UsagePointReadings:
    """Readings of one usage point: parallel arrays ``channel`` (int8), ``start`` (int64 epoch s), ``minutes``
    (int16), ``kwh`` (float64); ``rows`` numbers each IntervalReading in file order (1-based) for error messages."""

    href: str
    title: str
    channel: np.ndarray
    start: np.ndarray
    minutes: np.ndarray
    kwh: np.ndarray
    rows: np.ndarray
    errors: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why readings of this usage point were left out (not Wh)


@dataclass
class GreenButtonFile:
    usage_points: list[UsagePointReadings]
    tz_offset_s: int | None
    dst_offset_s: int | None


def _text(el, path: str, default=None):
    found = el.find(path)
    return found.text.strip() if found is not None and found.text is not None else default


def _links(entry) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for link in entry.findall(f"{ATOM}link"):
        out.setdefault(link.get("rel", ""), []).append(link.get("href", "").rstrip("/"))
    return out


def _int_or_none(text: str | None) -> int | None:
    try:
        return to_int(text) if text is not None else None
    except ValueError:
        return None


def parse_green_button(source: bytes | str, *, years: tuple[int, int] = YEARS) -> GreenButtonFile:
    """Parse a Green Button feed (bytes or text). Raises ``GreenButtonError`` naming the entry at fault; bad
    readings are row errors (see the module docstring). years: the first and last year an interval may start in."""
    try:
        root = ET.fromstring(source.encode() if isinstance(source, str) else source)
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: an unknown encoding declared
        raise GreenButtonError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{ATOM}feed" and root.tag != f"{ATOM}entry":
        raise GreenButtonError("not a Green Button (Atom) feed")
    entries = root.findall(f"{ATOM}entry") if root.tag == f"{ATOM}feed" else [root]

    usage_points: dict[str, str] = {}
    meter_readings: dict[str, tuple[str, str | None]] = {}  # href -> (usage point href, reading type href)
    reading_types: dict[str, dict] = {}
    blocks: list[tuple[str, object]] = []  # (meter reading href, IntervalBlock element)
    tz_offset = dst_offset = None
    for entry in entries:
        content = entry.find(f"{ATOM}content")
        if content is None:
            continue
        links = _links(entry)
        self_href = (links.get("self") or [""])[0]
        up_href = (links.get("up") or [""])[0]
        title = _text(entry, f"{ATOM}title", "") or ""
        for child in content:
            tag = child.tag.replace(ESPI, "")
            if tag == "UsagePoint":
                usage_points[self_href] = title
            elif tag == "MeterReading":
                related = [h for h in links.get("related", []) if "/ReadingType/" in h]
                meter_readings[self_href] = (up_href.rsplit("/MeterReading", 1)[0], related[0] if related else None)
            elif tag == "ReadingType":
                reading_types[self_href] = _reading_type(child, self_href)
            elif tag == "IntervalBlock":
                blocks.append((up_href.rsplit("/IntervalBlock", 1)[0], child))
            elif tag == "LocalTimeParameters":  # for information only: unreadable offsets are left out
                tz_offset = _int_or_none(_text(child, f"{ESPI}tzOffset", "0"))
                dst_offset = _int_or_none(_text(child, f"{ESPI}dstOffset", "0"))

    per_up: dict[str, dict[str, list]] = {}
    row = 0
    lo, hi = epoch_range(years)
    for block_no, (mr_href, block) in enumerate(blocks, start=1):
        up_href, rt_href = meter_readings.get(mr_href, (None, None))
        if rt_href is None or rt_href not in reading_types:
            raise GreenButtonError(f"IntervalBlock under {mr_href or '?'}: no ReadingType found for its MeterReading")
        rt = reading_types[rt_href]
        acc = per_up.setdefault(up_href, {"channel": [], "start": [], "minutes": [], "kwh": [], "rows": [],
                                          "errors": [], "net": [], "where": [], "skipped": []})
        if rt.get("unsupported"):  # another commodity or quantity (gas in therms, demand in W): not loaded here
            if rt["unsupported"] not in acc["skipped"]:
                acc["skipped"].append(rt["unsupported"])
            row += len(block.findall(f"{ESPI}IntervalReading"))
            continue
        for reading in block.findall(f"{ESPI}IntervalReading"):
            row += 1
            where = f" (IntervalReading {row}, in IntervalBlock {block_no})"

            def error(field_name: str, message: str, row=row, where=where, acc=acc) -> None:
                acc["errors"].append({"row": row, "field": field_name, "message": message + where})

            start = _text(reading, f"{ESPI}timePeriod/{ESPI}start")
            duration = _text(reading, f"{ESPI}timePeriod/{ESPI}duration", rt["interval_s"])
            value = _text(reading, f"{ESPI}value")
            try:
                start_s, duration_s = to_int(start), to_int(duration)
            except (TypeError, ValueError):
                error("timePeriod", "missing or invalid start/duration")
                continue
            if not lo <= start_s < hi:
                error("timePeriod", f"start {str(start_s)[:40]} is outside the years {years[0]}-{years[1]}")
                continue
            if duration_s not in (300, 900, 1800, 3600) or start_s % duration_s:
                error("timePeriod", f"interval of {duration_s} s at {start_s} is not on a 5/15/30/60-minute grid")
                continue
            if value in (None, ""):
                kwh = math.nan  # not provided: a gap
            else:
                try:
                    raw = to_float(value)
                except ValueError:
                    error("value", f"not a number: {value[:40]!r}")
                    continue
                if math.isnan(raw):
                    error("value", f"not a number: {value[:40]!r} (leave the value out for a missing reading)")
                    continue
                kwh = raw * rt["scale"]
                if math.isinf(kwh):
                    error("value", f"{value[:40]} Wh x 10^{rt['power']} is not a finite number")
                    continue
                if kwh < 0 and not rt["signed"]:
                    error("value", f"negative {('delivered', 'received')[rt['channel']]} energy ({raw:g} Wh x "
                                   f"10^{rt['power']}): only a net ReadingType (flowDirection 4) may be negative")
                    continue
            acc["channel"].append(rt["channel"])
            acc["start"].append(start_s)
            acc["minutes"].append(duration_s // 60)
            acc["kwh"].append(kwh)
            acc["rows"].append(row)
            acc["net"].append(rt["signed"])
            acc["where"].append(where)
    result = []
    for href, acc in per_up.items():
        if any(acc["net"]) and not all(acc["net"]):
            _drop_net_beside_forward_and_reverse(acc)
        result.append(UsagePointReadings(
            href=href or "", title=usage_points.get(href, ""), channel=np.array(acc["channel"], dtype=np.int8),
            start=np.array(acc["start"], dtype=np.int64), minutes=np.array(acc["minutes"], dtype=np.int16),
            kwh=np.array(acc["kwh"], dtype=np.float64), rows=np.array(acc["rows"], dtype=np.int64),
            errors=acc["errors"], skipped=acc["skipped"]))
    return GreenButtonFile(usage_points=result, tz_offset_s=tz_offset, dst_offset_s=dst_offset)


def _drop_net_beside_forward_and_reverse(acc: dict) -> None:
    """A usage point with forward or reverse readings and net ones (flowDirection 4): net is forward minus reverse,
    not a second delivered reading, so the net readings are not stored (on the delivered channel they would conflict
    with every forward reading of an hour with export, and both be rejected). Where a net reading's interval has a
    forward and a reverse reading and it disagrees with their difference (more than 0.001 Wh), it is a row error
    naming the three values; the forward and reverse readings load."""
    given: dict[tuple[int, int, int], float] = {}  # (channel, start, minutes) -> kWh of a forward/reverse reading
    for net, ch, start, minutes, kwh in zip(acc["net"], acc["channel"], acc["start"], acc["minutes"], acc["kwh"],
                                            strict=True):
        if not net and not math.isnan(kwh):
            given[(ch, start, minutes)] = kwh
    keep = []
    for k, net in enumerate(acc["net"]):
        if not net:
            keep.append(k)
            continue
        start, minutes, kwh = acc["start"][k], acc["minutes"][k], acc["kwh"][k]
        forward, reverse = given.get((0, start, minutes)), given.get((1, start, minutes))
        if forward is None or reverse is None or math.isnan(kwh) or abs(kwh - (forward - reverse)) <= 1e-6:
            continue
        when = dt.datetime.fromtimestamp(start, dt.UTC).isoformat().replace("+00:00", "Z")
        acc["errors"].append({"row": acc["rows"][k], "field": "value", "message": (
            f"net reading of {_wh(kwh)} Wh disagrees with forward {_wh(forward)} Wh - reverse {_wh(reverse)} Wh = "
            f"{_wh(forward - reverse)} Wh at {when}; the forward and reverse readings are loaded{acc['where'][k]}")})
    for name in ("channel", "start", "minutes", "kwh", "rows", "net", "where"):
        acc[name] = [acc[name][k] for k in keep]


def _wh(kwh: float) -> str:
    return f"{round(kwh * 1000, 6):g}"


def _reading_type(el, href: str) -> dict:
    uom = _text(el, f"{ESPI}uom", str(UOM_WH))
    if uom != str(UOM_WH):  # its blocks are left out; the file fails only if nothing else is there (the loader)
        return {"unsupported": f"ReadingType {href}: unsupported uom {uom[:40]} (only 72 = Wh energy readings)"}
    flow = _text(el, f"{ESPI}flowDirection", "1")
    try:
        channel = FLOW_DIRECTIONS[to_int(flow)]
    except (KeyError, ValueError) as exc:
        raise GreenButtonError(f"ReadingType {href}: unknown flowDirection {flow!r} (1 forward, 19 reverse, 4 net)") \
            from exc
    power_text = _text(el, f"{ESPI}powerOfTenMultiplier", "0")
    power = _int_or_none(power_text)
    if power not in POWERS:
        raise GreenButtonError(f"ReadingType {href}: powerOfTenMultiplier {power_text[:40]!r} is not a whole number "
                               f"from {POWERS.start} to {POWERS.stop - 1}")
    return {"channel": channel, "scale": 10.0 ** power / 1000.0, "interval_s": _text(el, f"{ESPI}intervalLength"),
            "signed": int(flow) == 4, "power": power}
