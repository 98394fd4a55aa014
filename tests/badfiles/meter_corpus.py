"""Bad interval-data files (issue 15): interval CSV and Green Button XML, each with what a load must report.

Deterministic: ``python -m tests.badfiles.meter_corpus`` rewrites ``corpus/interval_csv/``, ``corpus/greenbutton/``
and ``corpus/meter_manifest.json`` byte for byte (``tests/badfiles/test_meter_corpus.py`` checks the committed files
equal a fresh generation, then runs every file through every entry point of meter data).

Every file holds the same good readings (service point ``SP-1``, 2026-05-14 00:00-05:00 UTC, 0.5 to 1.75 kWh; some
files add more) besides its bad content. A manifest entry gives:

- ``status``: the load's status (``completed_with_errors`` when bad rows were rejected and the rest loaded,
  ``failed`` for a file-level problem: then nothing is written);
- ``new`` and ``rejected``: the load's counts;
- ``errors``: ``[{row, field, contains}]``, every row error of the load (row = line of the CSV or IntervalReading
  position of the Green Button file; None for a file-level problem, whose message names the line);
- ``stored``: every current ``IntervalDay`` after the load (``[service point, day, channel, 24 hourly kWh or
  null]``): the good rows loaded exactly;
- ``upload``: present when the upload API refuses the file before any load (``{status: 400, contains}``), as its
  check of the whole file does (empty, NUL bytes, not UTF-8, naming the line).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"
MANIFEST = ROOT / "meter_manifest.json"
HEADER = "service_point_id,channel,interval_start,interval_minutes,kwh,device"
DAY = "2026-05-14"
GOOD_KWH = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
SERVICE_POINTS = {"SP-1": "residential", "SP-2": "residential", "CI-1": "commercial_industrial"}
EPOCH_DAY = int(dt.datetime(2026, 5, 14, tzinfo=dt.UTC).timestamp())


def _good_lines() -> list[str]:
    return [f"SP-1,delivered,{DAY}T{h:02d}:00:00Z,60,{v}," for h, v in enumerate(GOOD_KWH)]


def _day(values: dict[int, float]) -> list[float | None]:
    return [values.get(h) for h in range(24)]


GOOD_STORED = [["SP-1", DAY, "delivered", _day(dict(enumerate(GOOD_KWH)))]]


def _entry(status: str, new: int, rejected: int, errors: list, stored: list, upload: dict | None = None) -> dict:
    out = {"status": status, "new": new, "rejected": rejected, "errors": errors, "stored": stored}
    if upload:
        out["upload"] = upload
    return out


def _csv(bad: list[tuple[str, str | None, str | None]], *, stored: list | None = None, new: int | None = None,
         extra_before: list[str] | None = None) -> tuple[bytes, dict]:
    """Header, 3 good rows, the bad rows (``(line, field, message part)``; field None = a row that loads), 3 good
    rows. Returns the file and its manifest entry."""
    good = _good_lines()
    lines = [HEADER, *(extra_before or []), *good[:3]]
    errors = []
    for text, field, contains in bad:
        lines.append(text)
        if field is not None:
            errors.append({"row": len(lines), "field": field, "contains": contains})
    lines += good[3:]
    n_new = new if new is not None else len(GOOD_KWH)
    return ("\n".join(lines) + "\n").encode(), _entry("completed_with_errors" if errors else "completed", n_new,
                                                      len(errors), errors, stored or GOOD_STORED)


def _row(hour: int, kwh: str, *, sp: str = "SP-1", channel: str = "delivered", start: str | None = None,
         minutes: int | str = 60, device: str = "") -> str:
    return f"{sp},{channel},{start or f'{DAY}T{hour:02d}:00:00Z'},{minutes},{kwh},{device}"


def _failed(message_part: str, upload: dict | None = None) -> dict:
    return _entry("failed", 0, 0, [{"row": None, "field": "file", "contains": message_part}], [], upload)


def _filler(n_days: int) -> tuple[list[str], list]:
    """SP-2, hourly, from 2026-01-01 for n_days: about 45 bytes a line (pushes later content past 64 KiB)."""
    lines, stored = [], []
    for d in range(n_days):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=d)
        values = {h: round(((d * 24 + h) % 17) / 10 + 0.1, 1) for h in range(24)}
        lines += [f"SP-2,delivered,{day}T{h:02d}:00:00Z,60,{v}," for h, v in values.items()]
        stored.append(["SP-2", str(day), "delivered", _day(values)])
    return lines, stored


def csv_cases() -> dict[str, tuple[bytes, dict]]:
    c: dict[str, tuple[bytes, dict]] = {}
    limit = "beyond the plausible"
    c["kwh_not_a_number.csv"] = _csv([(_row(10, "abc"), "kwh", "not a number: 'abc'")])
    # An underscore between digits: Python and numpy read 1_5 as 15 (PEP 515), a typo of 1.5 no meter means.
    c["kwh_digit_separator.csv"] = _csv([(_row(10, "1_5"), "kwh", "not a number: '1_5'"),
                                         (_row(11, "0.2_5"), "kwh", "not a number: '0.2_5'"),
                                         (_row(12, "1", minutes="6_0"), "interval_minutes",
                                          "must be 5, 15, 30 or 60, not '6_0'")])
    c["kwh_text_nan.csv"] = _csv([(_row(10, "NaN"), "kwh", "not a number: 'NaN'")])
    c["kwh_text_nan_lower.csv"] = _csv([(_row(10, "nan"), "kwh", "not a number: 'nan'"),
                                        (_row(11, "-nan"), "kwh", "not a number: '-nan'")])
    c["kwh_infinity.csv"] = _csv([(_row(10, "inf"), "kwh", "must be finite"),
                                  (_row(11, "-Infinity"), "kwh", "must be finite")])
    c["kwh_overflow_1e400.csv"] = _csv([(_row(10, "1e400"), "kwh", "must be finite")])
    c["kwh_1e308.csv"] = _csv([(_row(10, "1e308"), "kwh", limit)])
    c["kwh_1e28.csv"] = _csv([(_row(10, "1e28"), "kwh", limit)])
    c["kwh_just_over_limit.csv"] = _csv([(_row(10, "200.001"), "kwh", "beyond the plausible 200 kWh"),
                                         (_row(11, "60", minutes=15, start=f"{DAY}T11:15:00Z"), "kwh",
                                          "beyond the plausible 50 kWh")],
                                        )
    c["kwh_negative_delivered.csv"] = _csv([(_row(10, "-1.5"), "kwh", "negative delivered energy (-1.5 kWh)")])
    c["kwh_negative_received.csv"] = _csv(
        [(_row(10, "-0.25", channel="received"), "kwh", "negative received energy (-0.25 kWh)")])
    net = dict(enumerate(GOOD_KWH)) | {12: -2.5}
    c["kwh_negative_net_kept.csv"] = _csv(
        [(_row(12, "-2.5", channel="net"), None, None), (_row(13, "-1", channel="delivered"), "kwh", "negative")],
        stored=[["SP-1", DAY, "delivered", _day(net)]], new=7)
    ci = _day({0: 500.0})
    c["kwh_large_on_c_and_i.csv"] = _csv(
        [(_row(0, "500", sp="CI-1"), None, None), (_row(1, "100001", sp="CI-1"), "kwh",
                                                   "beyond the plausible 100000 kWh")],
        stored=[["CI-1", DAY, "delivered", ci], *GOOD_STORED], new=7)
    c["year_0001.csv"] = _csv([(_row(0, "1", start="0001-01-01T00:00:00Z"), "interval_start",
                                "0001-01-01T00:00:00Z is outside the years 1900-2100")])
    c["year_9999.csv"] = _csv([(_row(0, "1", start="9999-12-31T23:00:00Z"), "interval_start",
                                "outside the years 1900-2100")])
    c["year_1899_and_2101.csv"] = _csv([(_row(0, "1", start="1899-12-31T23:00:00Z"), "interval_start", "outside"),
                                        (_row(0, "1", start="2101-01-01T00:00:00+00:00"), "interval_start",
                                         "outside")])
    c["conflicting_duplicate.csv"] = _csv([(_row(10, "2"), "interval_start", "conflicting duplicate of row 6"),
                                           (_row(10, "3"), "interval_start", "conflicting duplicate of row 5")])
    # an identical duplicate counts once (hour 1 again, same value) and a conflicting one of a good row rejects both
    good_again = _row(1, "0.75")
    c["duplicates_identical_and_conflicting.csv"] = _csv(
        [(good_again, None, None), (_row(2, "9"), "interval_start", "conflicting duplicate of row 4")],
        stored=[["SP-1", DAY, "delivered", _day({h: v for h, v in enumerate(GOOD_KWH) if h != 2})]], new=5)
    c["duplicates_identical_and_conflicting.csv"][1]["errors"].insert(
        0, {"row": 4, "field": "interval_start", "contains": "conflicting duplicate of row 6"})
    c["duplicates_identical_and_conflicting.csv"][1]["rejected"] = 2
    c["nul_in_service_point.csv"] = _csv([("SP-1\x00,delivered,2026-05-14T10:00:00Z,60,1,", "service_point_id",
                                           "contains a NUL character")])
    c["nul_in_service_point.csv"][1]["upload"] = {"status": 400, "contains": "NUL"}
    c["nul_in_kwh.csv"] = _csv([(_row(10, "1\x00"), "kwh", "contains a NUL character")])
    c["nul_in_kwh.csv"][1]["upload"] = {"status": 400, "contains": "NUL"}
    filler, filler_stored = _filler(70)
    data, entry = _csv([(_row(10, "2\x00"), "kwh", "contains a NUL character")], extra_before=filler,
                       stored=[*filler_stored, *GOOD_STORED], new=6 + len(filler))
    entry["upload"] = {"status": 400, "contains": "NUL"}  # the upload check reads the whole file
    c["nul_after_64k.csv"] = (data, entry)
    c["service_point_id_too_long.csv"] = _csv([(_row(10, "1", sp="S" * 300), "service_point_id",
                                                "300 characters long")])
    c["device_too_long.csv"] = _csv([(_row(10, "1", device="D" * 5000), "device", "5,000 characters long")])
    c["quoted_field_beyond_csv_limit.csv"] = _csv([('SP-1,delivered,2026-05-14T10:00:00Z,60,1,"' + "x" * 140_000
                                                    + '"', "device", "140,000 characters long")])
    c["kwh_too_long_number.csv"] = _csv([(_row(10, "1" * 400), "kwh", "400 characters long")])
    c["wrong_column_count.csv"] = _csv([("SP-1,delivered,2026-05-14T10:00:00Z,60", "row",
                                         "expected 6 columns, found 4")])
    c["unknown_channel_and_bad_time.csv"] = _csv([(_row(10, "1", channel="sideways"), "channel", "sideways"),
                                                  (_row(0, "1", start="yesterday"), "interval_start",
                                                   "not an ISO 8601"),
                                                  (_row(0, "1", start=f"{DAY}T10:30:00Z"), "interval_start",
                                                   "does not start a 60-minute interval"),
                                                  (_row(10, "1", sp="SP-404"), "service_point_id",
                                                   "unknown service point 'SP-404'")])
    # file-level problems: nothing loads
    c["empty.csv"] = (b"", _failed("the file is empty", {"status": 400, "contains": "empty"}))
    c["no_header.csv"] = ("\n".join(_good_lines()).encode() + b"\n", _failed("missing columns"))
    c["latin1_line_5.csv"] = (_csv([])[0].replace(b"SP-1,delivered,2026-05-14T03", b"SP-\xe91,delivered,2026-05-14T03"),
                              _failed("line 5: not UTF-8 text", {"status": 400, "contains": "not UTF-8"}))
    filler, _ = _filler(70)
    lines = [HEADER, *filler]
    lines[1500] = lines[1500].replace("SP-2", "SP-\xe92")
    c["latin1_after_64k.csv"] = ("\n".join(lines).encode("latin-1") + b"\n", _failed("line 1501: not UTF-8 text",
                                                                                  {"status": 400,
                                                                                   "contains": "line 1501"}))
    rnd = random.Random(15)
    c["binary_garbage.csv"] = (bytes(rnd.randrange(256) for _ in range(3000)).replace(b"\x00", b"\x01"),
                               _failed("not UTF-8 text", {"status": 400, "contains": "not UTF-8"}))
    return c


# ---------------------------------------------------------------------------------------------- Green Button
BASE = "https://example.test/espi/1_1/resource"


def _feed(readings: list[tuple[str, str, str | None]], *, flow: str = "1", power: str = "0",
          root: str = "feed") -> str:
    """A Green Button feed of one usage point: ``readings`` = (start, duration, value text or None) each."""
    up, mr = f"{BASE}/UsagePoint/1", f"{BASE}/UsagePoint/1/MeterReading/1"
    body = "".join(
        "<espi:IntervalReading><espi:timePeriod>"
        f"<espi:duration>{duration}</espi:duration><espi:start>{start}</espi:start></espi:timePeriod>"
        + (f"<espi:value>{value}</espi:value>" if value is not None else "") + "</espi:IntervalReading>\n"
        for start, duration, value in readings)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:espi="http://naesb.org/espi">\n'
            f'<entry><link rel="self" href="{up}"/><title>Home</title><content><espi:UsagePoint/></content></entry>\n'
            f'<entry><link rel="self" href="{mr}"/><link rel="up" href="{up}/MeterReading"/>'
            f'<link rel="related" href="{BASE}/ReadingType/1"/><content><espi:MeterReading/></content></entry>\n'
            f'<entry><link rel="self" href="{BASE}/ReadingType/1"/><content><espi:ReadingType>'
            f"<espi:flowDirection>{flow}</espi:flowDirection><espi:intervalLength>3600</espi:intervalLength>"
            f"<espi:powerOfTenMultiplier>{power}</espi:powerOfTenMultiplier><espi:uom>72</espi:uom>"
            "</espi:ReadingType></content></entry>\n"
            f'<entry><link rel="self" href="{mr}/IntervalBlock/1"/><link rel="up" href="{mr}/IntervalBlock"/>'
            f"<content><espi:IntervalBlock>\n{body}</espi:IntervalBlock></content></entry>\n</{root}>\n")


def _good_readings() -> list[tuple[str, str, str | None]]:
    return [(str(EPOCH_DAY + 3600 * h), "3600", str(int(v * 1000))) for h, v in enumerate(GOOD_KWH)]


def _gb(bad: list[tuple[tuple[str, str, str | None], str | None, str | None]], *, stored: list | None = None,
        new: int | None = None, **feed) -> tuple[bytes, dict]:
    """Three good readings, the bad ones (``(reading, field, message part)``), three good readings."""
    good = _good_readings()
    readings = good[:3]
    errors = []
    for reading, field, contains in bad:
        readings.append(reading)
        if field is not None:
            errors.append({"row": len(readings), "field": field, "contains": contains})
    readings += good[3:]
    return _feed(readings, **feed).encode(), _entry("completed_with_errors" if errors else "completed",
                                                    new if new is not None else 6, len(errors), errors,
                                                    stored or GOOD_STORED)


def _at(hour: int) -> str:
    return str(EPOCH_DAY + 3600 * hour)


def greenbutton_cases() -> dict[str, tuple[bytes, dict]]:
    c: dict[str, tuple[bytes, dict]] = {}
    c["value_not_a_number.xml"] = _gb([((_at(10), "3600", "abc"), "value",
                                        "not a number: 'abc' (IntervalReading 4, in IntervalBlock 1)")])
    c["value_digit_separator.xml"] = _gb([((_at(10), "3600", "1_500"), "value", "not a number: '1_500'"),
                                          ((_at(11).replace("0", "_0", 1), "3600", "100"), "timePeriod",
                                           "missing or invalid start/duration"),
                                          ((_at(12), "3_600", "100"), "timePeriod",
                                           "missing or invalid start/duration")])
    c["value_text_nan.xml"] = _gb([((_at(10), "3600", "NaN"), "value", "not a number: 'NaN'")])
    c["value_negative_forward.xml"] = _gb([((_at(10), "3600", "-1500"), "value",
                                            "negative delivered energy (-1500 Wh x 10^0)")])
    c["value_1e28_wh.xml"] = _gb([((_at(10), "3600", "1e28"), "kwh", "1e+25 kWh in a 60-minute interval is beyond")])
    c["value_10_to_28_integer.xml"] = _gb([((_at(11), "3600", "1" + "0" * 28), "kwh", "beyond the plausible")])
    c["value_infinite.xml"] = _gb([((_at(10), "3600", "1e400"), "value", "is not a finite number")])
    c["start_year_1800.xml"] = _gb([((str(-5364662400), "3600", "100"), "timePeriod", "outside the years")])
    c["start_beyond_int64.xml"] = _gb([(("1" + "0" * 30, "3600", "100"), "timePeriod", "outside the years")])
    c["start_not_a_number.xml"] = _gb([(("noon", "3600", "100"), "timePeriod", "missing or invalid")])
    c["duration_off_grid.xml"] = _gb([((_at(10), "3601", "100"), "timePeriod", "not on a 5/15/30/60-minute grid")])
    c["conflicting_duplicate.xml"] = _gb([((_at(10), "3600", "100"), "interval_start",
                                           "conflicting duplicate of row 5"),
                                          ((_at(10), "3600", "200"), "interval_start",
                                           "conflicting duplicate of row 4")])
    net = dict(enumerate(GOOD_KWH)) | {12: -1.0}
    c["net_negative_kept_and_nan.xml"] = _gb([((_at(12), "3600", "-1000"), None, None),
                                              ((_at(13), "3600", "nan"), "value", "not a number: 'nan'")],
                                             flow="4", stored=[["SP-1", DAY, "delivered", _day(net)]], new=7)
    c["power_of_ten_not_a_number.xml"] = (_gb([])[0].replace(b"<espi:powerOfTenMultiplier>0<",
                                                             b"<espi:powerOfTenMultiplier>x<"),
                                          _failed("powerOfTenMultiplier 'x' is not a whole number"))
    c["power_of_ten_400.xml"] = (_gb([], power="400")[0], _failed("powerOfTenMultiplier '400'"))
    c["not_xml.xml"] = (b"<this is not xml at all\n", _failed("not well-formed XML"))
    c["wrong_root.xml"] = (b'<?xml version="1.0"?>\n<html><body>hello</body></html>\n',
                           _failed("not a Green Button (Atom) feed"))
    c["truncated.xml"] = (_gb([])[0][:700], _failed("not well-formed XML"))
    c["latin1_byte.xml"] = (_gb([])[0].replace(b"<title>Home</title>", b"<title>Caf\xe9</title>"),
                            _failed("not well-formed XML: not well-formed (invalid token): line 3",
                                    {"status": 400, "contains": "not UTF-8"}))
    c["no_readings.xml"] = (_feed([]).encode(), _failed("no interval readings found"))
    return c


def cases() -> dict[str, tuple[bytes, dict]]:
    """``{relative path: (content, manifest entry)}`` of every file."""
    out = {f"interval_csv/{name}": v for name, v in csv_cases().items()}
    out |= {f"greenbutton/{name}": v for name, v in greenbutton_cases().items()}
    return out


def manifest_text(all_cases: dict[str, tuple[bytes, dict]]) -> str:
    return json.dumps({path: entry for path, (_, entry) in sorted(all_cases.items())}, indent=1) + "\n"


def write(root: Path = ROOT) -> int:
    """(Re)write the corpus and its manifest; returns the number of files."""
    all_cases = cases()
    for sub in ("interval_csv", "greenbutton"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for old in (root / sub).iterdir():
            if old.is_file():
                old.unlink()
    for path, (content, _) in all_cases.items():
        (root / path).write_bytes(content)
    (root / "meter_manifest.json").write_text(manifest_text(all_cases))
    return len(all_cases)


if __name__ == "__main__":
    print(f"{write()} files written under {ROOT}")
