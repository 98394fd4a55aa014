"""Bad kW-drop files (issue 18.5): aggregator-reported kW drop per event and service point, each file with what a load
must report.

Deterministic: ``python -m tests.badfiles.kwdrop_corpus`` rewrites ``corpus/kw_drop/`` and
``corpus/kw_drop_manifest.json`` byte for byte (``tests/badfiles/test_kwdrop_corpus.py`` checks the committed files
equal a fresh generation, then loads every file through the synchronous loader, the job and the upload API).

The population (``POPULATION``): program ``KW-BYOT`` (America/Los_Angeles) with the event named ``Heat 1``,
2026-07-15 16:00-19:00 PDT, in which ``SP-1``, ``SP-2`` (residential) and ``CI-1`` (commercial & industrial) take
part; ``SP-9`` takes part in nothing. Files name the event by name (ids differ from database to database).
Every file holds a good record for SP-1 first and one for SP-2 last, besides its bad content. A manifest entry:
``status``, ``new``, ``rejected``, ``errors`` ``[{row, field, contains}]`` (row = line of the file; None for a
file-level problem), ``stored`` (every current record after the load: ``[service point, kW values]``) and, where
the upload API's check refuses the file before any load, ``upload`` ``{status, contains}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"
MANIFEST = ROOT / "kw_drop_manifest.json"
POPULATION = {"program": "KW-BYOT", "event": "Heat 1", "start": "2026-07-15T23:00:00+00:00",
              "end": "2026-07-16T02:00:00+00:00",
              "participants": {"SP-1": "residential", "SP-2": "residential", "CI-1": "commercial_industrial"},
              "bystanders": {"SP-9": "residential"}}
HEADER = ("EventId,ProgramId,SPId,ActualStartTime,ActualEndTime,IntervalSize(Seconds),MaxKwDrop,"
          "KwDrop1,KwDrop2,KwDrop3,KwDrop4,KwDrop5,KwDrop6")
START, END = "2026-07-15T16:00:00-07:00", "2026-07-15T19:00:00-07:00"
GOOD_1 = [1.5, 2.0, None, 2.5, 1.0, 0.5]  # 30-minute intervals, one blank
GOOD_2 = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def _text(value) -> str:
    return "" if value is None else (value if isinstance(value, str) else f"{value:g}")


def line(sp: str = "SP-2", values=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0), *, max_kw: str | None = "auto",
         event: str = "Heat 1", program: str = "KW-BYOT", start: str = START, end: str = END,
         size: str = "1800") -> str:
    if max_kw == "auto":
        numbers = [v for v in values if isinstance(v, int | float)]
        max_kw = f"{max(numbers):g}" if numbers else ""
    return ",".join([event, program, sp, start, end, size, max_kw or "", *(_text(v) for v in values)])


GOOD_STORED = [["SP-1", GOOD_1], ["SP-2", GOOD_2]]


def _file(bad: list[tuple[str, str | None, str | None]], *, stored: list | None = None,
          new: int | None = None) -> tuple[bytes, dict]:
    """Header, the SP-1 record, the bad lines (``(text, column, message part)``; column None = a line that loads, or
    a second error of the line before), the SP-2 record."""
    lines = [HEADER, line("SP-1", GOOD_1)]
    errors, rejected = [], 0
    for text, column, contains in bad:
        if text is not None:
            lines.append(text)
            rejected += column is not None
        if column is not None:
            errors.append({"row": len(lines), "field": column, "contains": contains})
    lines.append(line("SP-2", GOOD_2))
    entry = {"status": "completed_with_errors" if errors else "completed", "new": 2 if new is None else new,
             "rejected": rejected, "errors": errors, "stored": stored or GOOD_STORED}
    return ("\n".join(lines) + "\n").encode(), entry


def _failed(contains: str, upload: dict | None = None) -> tuple[bytes, dict]:
    entry = {"status": "failed", "new": 0, "rejected": 0,
             "errors": [{"row": None, "field": "file", "contains": contains}], "stored": []}
    if upload:
        entry["upload"] = upload
    return b"", entry


def cases() -> dict[str, tuple[bytes, dict]]:
    c: dict[str, tuple[bytes, dict]] = {}
    six = [1.0] * 6
    c["kw_not_a_number.csv"] = _file([(line("SP-2", [1.0, "abc", 1, 1, 1, 1]), "KwDrop2", "not a finite number "
                                                                                          "of kW: 'abc'")])
    c["kw_digit_separator.csv"] = _file([(line("SP-2", [1.0, "1_5", 1, 1, 1, 1]), "KwDrop2",
                                          "not a finite number of kW: '1_5'")])
    c["kw_text_nan.csv"] = _file([(line("SP-2", ["NaN", 1, 1, 1, 1, 1]), "KwDrop1", "'NaN'")])
    c["kw_infinity.csv"] = _file([(line("SP-2", [1, 1, "inf", 1, 1, 1]), "KwDrop3", "'inf'")])
    c["kw_overflow_1e400.csv"] = _file([(line("SP-2", [1, 1, 1, "1e400", 1, 1]), "KwDrop4", "'1e400'")])
    c["kw_beyond_residential_limit.csv"] = _file([(line("SP-2", [250, 1, 1, 1, 1, 1]), "KwDrop1",
                                                   "250 kW is beyond the plausible 200 kW")])
    data, entry = _file([(line("CI-1", [250, 1, 1, 1, 1, 1]), None, None),
                         (line("CI-1", [250, 1, 1, 1, 1, 1], event="Heat 1"), "SPId", "duplicate of line 3")],
                        stored=[["CI-1", [250.0, 1.0, 1.0, 1.0, 1.0, 1.0]], *GOOD_STORED], new=3)
    c["kw_large_on_c_and_i_and_identical_duplicate.csv"] = (data, entry)
    c["unknown_event.csv"] = _file([(line(event="Heat 99"), "EventId",
                                     "No event of program KW-BYOT has id or name 'Heat 99'.")])
    c["unknown_event_id.csv"] = _file([(line(event="987654321"), "EventId", "No event has id 987654321.")])
    c["unknown_program.csv"] = _file([(line(program="NOPE"), "ProgramId", "No program has code or id 'NOPE'.")])
    c["unknown_service_point.csv"] = _file([(line("SP-404"), "SPId",
                                             "No service point has service point id or id 'SP-404'.")])
    c["service_point_not_in_event.csv"] = _file([(line("SP-9"), "SPId", "service point SP-9 has no participation")])
    c["end_before_start.csv"] = _file([(line(end="2026-07-15T15:00:00-07:00"), "ActualEndTime",
                                        "is not after ActualStartTime")])
    c["end_equals_start.csv"] = _file([(line(end=START), "ActualEndTime", "is not after ActualStartTime")])
    c["span_not_whole_intervals.csv"] = _file([(line(end="2026-07-15T18:50:00-07:00"), "ActualEndTime",
                                                "(10,200 s) is not a whole number of 1800-second intervals")])
    c["too_few_values.csv"] = _file([(line(values=[1.0] * 5), "KwDrop", "need 6 KwDrop values; the record has 5")])
    c["too_many_values.csv"] = _file([(line(values=[1.0] * 7), "KwDrop", "need 6 KwDrop values; the record has 7")])
    c["negative_interval_size.csv"] = _file([(line(size="-1800"), "IntervalSize(Seconds)", "not '-1800'")])
    c["zero_interval_size.csv"] = _file([(line(size="0"), "IntervalSize(Seconds)", "not '0'")])
    c["interval_size_text.csv"] = _file([(line(size="half an hour"), "IntervalSize(Seconds)",
                                          "not 'half an hour'")])
    c["max_kw_drop_inconsistent.csv"] = _file([(line(values=six, max_kw="3.00"), "MaxKwDrop",
                                                "3.00 is not the largest KwDrop value (KwDrop1 = 1)")])
    c["max_kw_drop_without_values.csv"] = _file([(line(values=[None] * 6, max_kw="1.00"), "MaxKwDrop",
                                                  "1.00 given, but no interval has a kW drop")])
    c["max_kw_drop_not_a_number.csv"] = _file([(line(values=six, max_kw="lots"), "MaxKwDrop",
                                                "not a finite number of kW: 'lots'")])
    c["time_not_iso.csv"] = _file([(line(start="15/07/2026 16:00"), "ActualStartTime", "not a date and time")])
    c["time_in_spring_gap.csv"] = _file([(line(start="2026-03-08T02:30:00", end="2026-03-08T05:30:00"),
                                          "ActualStartTime", "does not exist in America/Los_Angeles")])
    c["year_0001.csv"] = _file([(line(start="0001-01-01T00:00:00Z", end="0001-01-01T03:00:00Z"),
                                 "ActualStartTime", "is outside the years 1900-2100"),
                                (None, "ActualEndTime", "0001-01-01T03:00:00Z is outside the years 1900-2100")])
    c["span_outside_event.csv"] = _file([(line(start="2026-07-16T16:00:00-07:00", end="2026-07-16T19:00:00-07:00"),
                                          "ActualStartTime", "does not overlap event")])
    c["conflicting_duplicate.csv"] = _file([(line("SP-1", six), "SPId", "conflicting duplicate of line 2")],
                                           stored=[["SP-2", GOOD_2]], new=1)
    c["conflicting_duplicate.csv"][1]["errors"].insert(0, {"row": 2, "field": "SPId",
                                                           "contains": "conflicting duplicate of line 3"})
    c["conflicting_duplicate.csv"][1]["rejected"] = 2
    c["too_few_fields.csv"] = _file([("Heat 1,KW-BYOT,SP-2,2026-07-15T16:00:00-07:00", "line", "has 4 fields")])
    c["several_problems_one_line.csv"] = _file([(line("SP-404", [1, "x", 1, 1, 1, 1], program="NOPE"),
                                                 "ProgramId", "No program"), (None, "SPId", "SP-404"),
                                                (None, "KwDrop2", "'x'")])
    c["field_too_long.csv"] = _file([(line(event="E" * 300), "EventId", "300 characters long (at most 256)")])
    data, entry = _file([(line().replace("SP-2", "SP-2\x00"), "line", "contains a NUL character")])
    entry["upload"] = {"status": 400, "contains": "NUL"}
    c["nul_in_service_point.csv"] = (data, entry)
    # file-level problems: nothing loads
    c["empty.csv"] = _failed("the file is empty", {"status": 400, "contains": "empty"})
    c["blank_lines_only.csv"] = (b"\n\n \n", _failed("the file is empty")[1])
    c["wrong_header.csv"] = (HEADER.replace("SPId", "ServicePoint").encode() + b"\n" + line().encode() + b"\n",
                             _failed("line 1: header column 3 is 'ServicePoint'; expected SPId")[1])
    c["latin1_line_3.csv"] = (_file([])[0].replace(b"SP-2", b"SP-\xe92"),
                              _failed("line 3: not UTF-8 text", {"status": 400, "contains": "not UTF-8"})[1])
    rnd = random.Random(18)
    c["binary_garbage.csv"] = (bytes(rnd.randrange(1, 256) for _ in range(3000)),
                               _failed("not UTF-8 text", {"status": 400, "contains": "not UTF-8"})[1])
    return {f"kw_drop/{name}": v for name, v in c.items()}


def manifest_text(all_cases: dict[str, tuple[bytes, dict]]) -> str:
    return json.dumps({path: entry for path, (_, entry) in sorted(all_cases.items())}, indent=1) + "\n"


def write(root: Path = ROOT) -> int:
    """(Re)write the corpus and its manifest; returns the number of files."""
    all_cases = cases()
    (root / "kw_drop").mkdir(parents=True, exist_ok=True)
    for old in (root / "kw_drop").iterdir():
        if old.is_file():
            old.unlink()
    for path, (content, _) in all_cases.items():
        (root / path).write_bytes(content)
    (root / "kw_drop_manifest.json").write_text(manifest_text(all_cases))
    return len(all_cases)


if __name__ == "__main__":
    print(f"{write()} files written under {ROOT}")
