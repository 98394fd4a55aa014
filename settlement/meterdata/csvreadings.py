"""CSV interval readings: parse in bulk into column arrays (no Django).

Columns (header required, order free, names case-insensitive):

=================== ==========================================================================================
``service_point_id`` the service point's id (``ServicePoint.service_point_id``)
``channel``          ``delivered`` (import), ``received`` (export) or ``net`` (delivered minus received, stored on
                     the delivered channel; negative values kept). Anything else is a row error. Optional: default
                     ``delivered``.
``interval_start``   start of the interval: ISO 8601 with offset (``2026-07-15T16:00:00-07:00``) or ``Z``; or a
                     local time without offset when the load declares a time zone (``tz``): the repeated hour of the
                     autumn change is resolved by order (first occurrence = daylight time, second = standard time,
                     per service point/device/channel), and a time that does not exist in spring is a row error.
``interval_minutes`` 5, 15, 30 or 60. Optional: default 60.
``kwh``              energy of the interval in kWh; empty = not provided (a gap stays a gap, never a zero).
``device``           optional: the device's serial number, for per-device readings.
=================== ==========================================================================================

Rows are numbered as lines of the file (the header is line 1). Parsing is vectorised: each distinct timestamp text
is parsed once (a file of 100,000 service points x 24 hours has 24 distinct timestamps).

Implausible rows are rejected with their line and field (``settlement.meterdata.checks``): a kWh that is not a number
(the text ``NaN`` included: leave the field empty for "not provided"; ``1_5``, which Python reads as 15: a
digit separator is not a number here, ``cpm.base.numbers``), infinite, or negative on the delivered or
received channel; an interval start outside ``years``; a field with a NUL character or longer than ``MAX_FIELD``
characters. The per-interval kWh limit depends on the service point's customer class: the loader checks it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from cpm.base.numbers import DIGIT_SEPARATOR, to_float, to_int

from .checks import MAX_FIELD, YEARS, reject_values, values_plausible

UTC = dt.UTC
CHANNELS = {"delivered": 0, "received": 1, "net": 0, "": 0}
CHANNEL_NAMES = ("delivered", "received")
_UNSEEN = object()
REQUIRED = ("service_point_id", "interval_start", "kwh")


@dataclass
class ParsedReadings:
    """Readings as parallel arrays (one element per accepted row).

    ``sp_unique`` + ``sp_code``: external service point ids, as distinct strings and an int64 code per row;
    ``device_unique`` + ``device_code``: device serials the same way (code -1 = no device);
    ``channel``: int8 (0 delivered, 1 received); ``start``: int64 UTC epoch seconds of the interval start;
    ``minutes``: int16; ``kwh``: float64 (NaN = not provided); ``rows``: int64 row (line) numbers for error messages.
    ``errors``: ``[{row, field, message}]`` of the rejected rows. ``lines``: lines of the source that were numbered,
    the header and blank lines included (a caller parsing a file block by block numbers the next block from it).
    """

    sp_unique: list[str]
    sp_code: np.ndarray
    device_unique: list[str]
    device_code: np.ndarray
    channel: np.ndarray
    start: np.ndarray
    minutes: np.ndarray
    kwh: np.ndarray
    rows: np.ndarray
    errors: list[dict] = field(default_factory=list)
    rejected: int = 0
    lines: int = 0

    @classmethod
    def empty(cls) -> ParsedReadings:
        return cls([], np.zeros(0, np.int64), [], np.zeros(0, np.int64), np.zeros(0, np.int8),
                   np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.sp_code.size)


class CsvFormatError(ValueError):
    """The file as a whole is unreadable (header missing columns): nothing is loaded."""


class CsvEncodingError(CsvFormatError):
    """The file is not UTF-8 text; ``line``: the line (of the text given to the parser) holding the first bad byte."""

    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(f"line {line}: not UTF-8 text (save the file as UTF-8)")


_LINE_END = re.compile(r"\r\n|\r|\n")


def _split_lines(text: str) -> list[str]:
    """The lines of ``text``: only CR, LF and CRLF end one (as in the csv module and the vectorised path), not the
    other characters ``str.splitlines`` breaks at (form feed, U+0085, U+2028, ...), which stay in their field (a
    device serial holding one would otherwise become two rows and shift every later line number)."""
    lines = _LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


def _parse_aware(text: str) -> int | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return -1
    return int(value.timestamp())


def _header(line: str) -> list[str]:
    """The column names of the header line (quoted or not, case and spaces ignored). Raises ``CsvFormatError`` for
    a column named twice: which of two ``kwh`` columns holds the reading cannot be guessed."""
    try:
        names = next(csv.reader([line])) if '"' in line else line.split(",")
    except (csv.Error, StopIteration):
        names = line.split(",")
    header = [h.strip().lower() for h in names]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise CsvFormatError(f"column{'s' if len(twice) > 1 else ''} named twice in the header (line 1): "
                             f"{', '.join(twice)}")
    return header


def parse_csv(source: str | bytes | io.TextIOBase | Iterable[str], *, tz: str | None = None,
              occurrences: dict | None = None, years: tuple[int, int] = YEARS) -> ParsedReadings:
    """Parse CSV readings (see the module docstring for the columns).

    source: the text, bytes (UTF-8, BOM allowed) or an open text file. tz: IANA zone for timestamps without offset
    (``None``: such timestamps are row errors). occurrences: the order-of-appearance state of the repeated autumn
    hour (``{(service point, device, channel, text): count}``), updated in place; pass the same dict for every block
    of one file so a hour's second occurrence in a later block is still standard time (default: a fresh dict).
    years: the first and last year an interval may start in.
    Raises ``CsvFormatError`` for an empty file, a missing header column or one named twice, ``CsvEncodingError``
    (with the line) for bytes that are not UTF-8; every other problem is a per-row error in ``ParsedReadings.errors``
    while the other rows load.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        try:
            fast = _parse_fast(bytes(source), years=years)
        except UnicodeDecodeError:  # the general parser below says where
            fast = None
        if fast is not None:
            return fast
        data = bytes(source)
        try:
            source = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvEncodingError(data.count(b"\n", 0, exc.start) + 1) from exc
    text = source if isinstance(source, str) else "".join(source)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _split_lines(text)
    if not lines:
        raise CsvFormatError("the file is empty")
    header = _header(lines[0])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFormatError(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    zone = ZoneInfo(tz) if tz else None
    width = len(header)
    col = {name: header.index(name) for name in header}
    i_sp, i_ts, i_kwh = col["service_point_id"], col["interval_start"], col["kwh"]
    i_ch, i_min, i_dev = col.get("channel"), col.get("interval_minutes"), col.get("device")

    errors: list[dict] = []
    rejected = 0

    def reject(row: int, field_name: str, message: str) -> None:
        nonlocal rejected
        rejected += 1
        if len(errors) < 1000:  # keep the record bounded; the count stays exact
            errors.append({"row": row, "field": field_name, "message": message})

    # Split rows; quoted fields are rare in meter files: fall back to the csv module only for lines with quotes.
    rows: list[list[str]] = []
    numbers: list[int] = []
    nul = "\x00" in text
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            parts = line.split(",") if '"' not in line else next(csv.reader([line]))
        except csv.Error as exc:  # e.g. a quoted field beyond the csv module's limit
            reject(n, "row", f"unreadable: {exc}")
            continue
        if len(parts) != width:
            reject(n, "row", f"expected {width} columns, found {len(parts)}")
            continue
        if nul and "\x00" in line:
            where = next(i for i, p in enumerate(parts) if "\x00" in p)
            reject(n, header[where], "contains a NUL character")
            continue
        if len(line) > MAX_FIELD:
            long = [i for i, p in enumerate(parts) if len(p) > MAX_FIELD]
            if long:
                reject(n, header[long[0]], f"is {len(parts[long[0]]):,} characters long (at most {MAX_FIELD})")
                continue
        rows.append(parts)
        numbers.append(n)
    if not rows:
        out = ParsedReadings.empty()
        out.errors, out.rejected, out.lines = errors, rejected, len(lines)
        return out

    columns = list(zip(*rows, strict=True))
    row_no = np.array(numbers, dtype=np.int64)
    n_rows = len(rows)
    ok = np.ones(n_rows, dtype=bool)

    sp_keys = [s.strip() for s in columns[i_sp]]
    for k in np.flatnonzero(np.array([not s for s in sp_keys], dtype=bool)):
        reject(int(row_no[k]), "service_point_id", "is required")
        ok[k] = False

    # channel (signed: the net channel, whose values may be negative)
    signed = None
    if i_ch is not None:
        cache: dict[str, int] = {}
        ch = np.empty(n_rows, dtype=np.int8)
        net_texts = {raw for raw in set(columns[i_ch]) if raw.strip().lower() == "net"}
        if net_texts:
            signed = np.fromiter((raw in net_texts for raw in columns[i_ch]), dtype=bool, count=n_rows)
        for k, raw in enumerate(columns[i_ch]):
            code = cache.get(raw)
            if code is None:
                code = CHANNELS.get(raw.strip().lower(), -1)
                cache[raw] = code
            if code < 0:
                reject(int(row_no[k]), "channel", f"unknown flow direction {raw.strip()!r} "
                                                  "(delivered, received or net)")
                ok[k] = False
                code = 0
            ch[k] = code
    else:
        ch = np.zeros(n_rows, dtype=np.int8)

    # interval minutes
    if i_min is not None:
        cache_m: dict[str, int] = {}
        minutes = np.empty(n_rows, dtype=np.int16)
        for k, raw in enumerate(columns[i_min]):
            m = cache_m.get(raw)
            if m is None:
                try:
                    m = to_int(raw.strip() or 60)
                except ValueError:
                    m = -1
                m = m if m in (5, 15, 30, 60) else -1
                cache_m[raw] = m
            if m < 0:
                reject(int(row_no[k]), "interval_minutes", f"must be 5, 15, 30 or 60, not {raw.strip()!r}")
                ok[k] = False
                m = 60
            minutes[k] = m
    else:
        minutes = np.full(n_rows, 60, dtype=np.int16)

    # kWh: vectorised conversion, per-row fallback only when a value is not a plain number
    kwh_col = columns[i_kwh]
    try:
        if DIGIT_SEPARATOR in "".join(kwh_col):  # numpy, as float(), reads 1_5 as 15: the per-row path refuses it
            raise ValueError(DIGIT_SEPARATOR)
        kwh = np.array(kwh_col, dtype=np.float64)
        given = np.ones(n_rows, dtype=bool)  # no empty field, or the conversion would have failed
    except ValueError:
        kwh = np.empty(n_rows, dtype=np.float64)
        given = np.ones(n_rows, dtype=bool)
        for k, raw in enumerate(kwh_col):
            raw = raw.strip()
            if not raw:
                kwh[k] = math.nan
                given[k] = False
                continue
            try:
                kwh[k] = to_float(raw)
            except ValueError:
                reject(int(row_no[k]), "kwh", f"not a number: {raw!r}")
                ok[k] = False
                kwh[k] = math.nan
    for k in np.flatnonzero(ok & given & np.isnan(kwh)):  # the text NaN: not a reading, and not "not provided"
        reject(int(row_no[k]), "kwh", f"not a number: {kwh_col[k].strip()!r} (leave the field empty for a missing "
                                      "reading)")
        ok[k] = False

    # timestamps: parse each distinct text once
    start = np.zeros(n_rows, dtype=np.int64)
    aware_cache: dict[str, int | None] = {}
    local_rows: list[int] = []
    for k, raw in enumerate(columns[i_ts]):
        value = aware_cache.get(raw, _UNSEEN)
        if value is _UNSEEN:
            value = aware_cache[raw] = _parse_aware(raw.strip())
        if value is None:
            reject(int(row_no[k]), "interval_start", f"not an ISO 8601 date-time: {raw.strip()!r}")
            ok[k] = False
        elif value == -1:
            local_rows.append(k)
        else:
            start[k] = value
    if local_rows:
        if zone is None:
            for k in local_rows:
                reject(int(row_no[k]), "interval_start", "has no UTC offset and the load declares no time zone")
                ok[k] = False
        else:
            _resolve_local(local_rows, columns[i_ts], zone, sp_keys, columns[i_dev] if i_dev is not None else None,
                           ch, start, ok, row_no, reject, {} if occurrences is None else occurrences)

    reject_values(kwh, start, ch, signed, row_no, ok, reject, years=years,
                  start_text=lambda k: columns[i_ts][k].strip())
    misaligned = ok & ((start % (minutes.astype(np.int64) * 60)) != 0)
    for k in np.flatnonzero(misaligned):
        reject(int(row_no[k]), "interval_start", f"does not start a {int(minutes[k])}-minute interval")
        ok[k] = False

    keep = np.flatnonzero(ok)
    sp_unique, sp_code = _factorize(sp_keys)
    if i_dev is not None:
        dev_unique, dev_code = _factorize([d.strip() for d in columns[i_dev]])
        if "" in dev_unique:  # "" = no device -> code -1
            blank = dev_unique.index("")
            dev_code = np.where(dev_code == blank, -1, dev_code - (dev_code > blank))
            dev_unique.pop(blank)
    else:
        dev_unique, dev_code = [], np.full(n_rows, -1, dtype=np.int64)
    return ParsedReadings(
        sp_unique=sp_unique, sp_code=sp_code[keep], device_unique=dev_unique, device_code=dev_code[keep],
        channel=ch[keep], start=start[keep], minutes=minutes[keep], kwh=kwh[keep], rows=row_no[keep],
        errors=errors, rejected=rejected, lines=len(lines))


def _factorize(values: list[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return list(index), codes


_BEYOND = 2**62  # an epoch second past any calendar: a local time whose UTC instant is outside years 1..9999


def _resolve_local(local_rows, ts_col, zone, sp_keys, dev_col, ch, start, ok, row_no, reject, seen) -> None:
    """Local wall times -> UTC: spring gaps rejected; the repeated autumn hour resolved by order of appearance
    (``seen``: occurrences so far per key, updated in place)."""
    cache: dict[str, tuple[int, int, bool] | None] = {}
    for k in local_rows:
        raw = ts_col[k].strip()
        info = cache.get(raw, False)
        if info is False:
            try:
                naive = dt.datetime.fromisoformat(raw)
            except ValueError:
                info = None
            else:
                first = naive.replace(tzinfo=zone, fold=0)
                try:
                    exists = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
                    second = naive.replace(tzinfo=zone, fold=1)
                    info = (int(first.timestamp()), int(second.timestamp()), exists)
                except OverflowError:  # before year 1 or after 9999 in UTC: out of any range, the years check says so
                    edge = _BEYOND if naive.year > 1 else -_BEYOND
                    info = (edge, edge, True)
            cache[raw] = info
        if info is None:
            reject(int(row_no[k]), "interval_start", f"not an ISO 8601 date-time: {raw!r}")
            ok[k] = False
            continue
        t0, t1, exists = info
        if not exists:
            reject(int(row_no[k]), "interval_start",
                   f"{raw} does not exist in {zone.key} (skipped by the daylight-saving change)")
            ok[k] = False
            continue
        if t0 == t1:
            start[k] = t0
            continue
        key = (sp_keys[k], dev_col[k].strip() if dev_col is not None else "", int(ch[k]), raw)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        if occurrence > 1:
            reject(int(row_no[k]), "interval_start", f"{raw} occurs more than twice for this service point")
            ok[k] = False
            continue
        start[k] = t0 if occurrence == 0 else t1


# ----------------------------------------------------------------------------------------------- vectorised path
_MULT = np.random.default_rng(20260515).integers(1, 2**63, size=16, dtype=np.uint64) | np.uint64(1)
_WORD_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [2**64 - 1], dtype=np.uint64)  # the r low bytes
_PAD = 8 * (_MULT.size + 1)  # bytes after the text: a field's last word may be read past the end
_POW10 = 10.0 ** np.arange(23)  # exact float64 powers of ten


class _Fields:
    """The text of a block as a zero-padded uint8 buffer, and every field's span: ``lo[:, i]`` and ``lens[:, i]``
    (bytes) of column i of each row."""

    def __init__(self, content: bytes, lo: np.ndarray, lens: np.ndarray) -> None:
        self.content = content
        self.buf = np.zeros(len(content) + _PAD, dtype=np.uint8)
        self.buf[: len(content)] = np.frombuffer(content, dtype=np.uint8)
        # every byte offset as the start of a little-endian uint64 (an unaligned, overlapping view: no copy)
        self.words_at = np.ndarray((self.buf.size - 7,), dtype="<u8", buffer=self.buf, strides=(1,))
        self.lo, self.lens = lo, lens

    def words(self, i: int) -> list[np.ndarray]:
        """Column i as k arrays of little-endian uint64 words (k = widest field / 8, rounded up), zero past each
        field's end. No NUL in the text, so two fields are equal exactly when all their words are."""
        lo, lens = np.ascontiguousarray(self.lo[:, i]), np.ascontiguousarray(self.lens[:, i])
        k = max(1, -(-int(lens.max(initial=0)) // 8))
        whole = int(lens.min(initial=0)) // 8  # words inside every field: nothing to mask
        return [self.words_at[lo + 8 * j] if j < whole else
                self.words_at[lo + 8 * j] & _WORD_MASKS[np.clip(lens - 8 * j, 0, 8)] for j in range(k)]

    def texts(self, rows: np.ndarray, i: int) -> list[str]:
        """The (stripped) texts of column i in ``rows``, decoded in one piece (a field holds no line end).
        Raises UnicodeDecodeError for bytes that are not UTF-8."""
        lo, lens = self.lo[rows, i], self.lens[rows, i]
        data = self.content
        return [t.strip() for t in b"\n".join([data[x:x + m] for x, m in zip(lo.tolist(), lens.tolist(),
                                                                            strict=True)]).decode().split("\n")]

    def factorize(self, i: int) -> tuple[list[str], np.ndarray] | None:
        """Distinct texts of column i (stripped) and an int64 code per row; None on a hash collision (the caller
        falls back). Runs of equal fields (a file sorted by service point) are hashed once."""
        words = self.words(i)
        n = words[0].size
        head = np.ones(n, dtype=bool)
        np.not_equal(words[0][1:], words[0][:-1], out=head[1:])
        for w in words[1:]:
            head[1:] |= w[1:] != w[:-1]
        heads = np.flatnonzero(head)
        wh = [w[heads] for w in words]
        key = wh[0]
        if len(wh) > 1:
            with np.errstate(over="ignore"):
                key = key * _MULT[0]
                for j, w in enumerate(wh[1:], start=1):
                    key += w * _MULT[j]
        distinct = np.unique(key)
        codes = np.searchsorted(distinct, key)
        first = np.empty(distinct.size, dtype=np.int64)
        first[codes] = np.arange(codes.size)  # one row of each code (any: every row is compared with it below)
        if len(wh) > 1 and not all(np.array_equal(w, w[first][codes]) for w in wh):
            return None
        return self.texts(heads[first], i), codes[np.cumsum(head) - 1]

    def decimals(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Column i as float64 (NaN for an empty field) and the mask of empty fields; None when a field is not a
        number. Plain decimals (``-12.345``: up to 15 digits) are read with numpy, one character position at a
        time: the integer of the digits divided by the power of ten of the decimals, both exact in float64, so the
        quotient is the correctly rounded value, bit for bit what ``float()`` gives; any other text (exponents,
        spaces, ``inf``) is converted by numpy, row by row, with ``float``'s rules, except that a digit separator
        (``1_5``, which numpy reads as 15) is not a number (``cpm.base.numbers``)."""
        lo, lens = self.lo[:, i], self.lens[:, i]
        n = lo.size
        buf = self.buf
        neg = buf[lo] == 45
        lo_body = lo + neg  # the first character after a minus sign
        lens_body = lens - neg
        short, width = int(lens_body.min(initial=0)), int(lens_body.max(initial=0))
        mantissa = np.zeros(n, dtype=np.int64)
        digits = np.zeros(n, dtype=np.int16)
        decimals = np.zeros(n, dtype=np.int16)
        dots = np.zeros(n, dtype=np.int16)
        other = np.zeros(n, dtype=bool)  # a character that is neither a digit nor the point
        for j in range(width):
            c = buf[lo_body + j]
            d = c - np.uint8(48)
            is_digit = d < 10
            is_dot = c == 46
            if j >= short:  # past the end of some fields
                inside = lens_body > j
                is_digit &= inside
                is_dot &= inside
                other |= inside & ~is_digit & ~is_dot
            else:
                other |= ~is_digit & ~is_dot
            mantissa *= np.where(is_digit, 10, 1)
            mantissa += d * is_digit
            digits += is_digit
            decimals += is_digit & (dots > 0)
            dots += is_dot
        empty = lens == 0
        simple = ~other & (dots <= 1) & (digits >= 1) & (digits <= 15)
        value = mantissa / _POW10[np.minimum(decimals, 22)]
        np.negative(value, out=value, where=neg)  # -0.0 for "-0", as float()
        value[empty] = np.nan
        rest = np.flatnonzero(~simple & ~empty)
        if rest.size:
            texts = np.array([self.content[int(lo[r]): int(lo[r] + lens[r])] for r in rest])
            if any(b"_" in t for t in texts.tolist()):  # numpy reads 1_5 as 15: not a number here
                return None
            try:
                value[rest] = texts.astype(np.float64)
            except ValueError:
                return None
        return value, empty


def _parse_fast(content: bytes, *, years: tuple[int, int] = YEARS) -> ParsedReadings | None:
    """Vectorised parse of a plain file (no quotes, no CR, no NUL, every row complete, times with offsets, valid
    and plausible numbers, known channels and lengths). Returns None whenever anything needs a per-row message: the
    general parser then runs and reports row errors.

    The fields are located with numpy (line ends and commas); a column's texts are compared as uint64 words of its
    bytes, each distinct text decoded once; no Python object per row."""
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    if not content or b'"' in content or b"\r" in content or b"\x00" in content:
        return None
    a = np.frombuffer(content, dtype=np.uint8)
    newlines = np.flatnonzero(a == 10)
    ends = newlines if a[-1] == 10 else np.r_[newlines, a.size]
    n_lines = int(ends.size)  # the header and blank lines included, as the general parser counts them
    starts = np.r_[0, newlines + 1][: ends.size]
    header = [h.strip().lower() for h in content[: ends[0]].decode("utf-8").split(",")]
    if any(c not in header for c in REQUIRED) or len(set(header)) != len(header):
        return None
    width = len(header)
    starts, ends = starts[1:], ends[1:]
    nonblank = ends > starts
    starts, ends = starts[nonblank], ends[nonblank]
    n = starts.size
    if n == 0:
        return None
    commas = np.flatnonzero(a == 44)
    commas = commas[commas > (newlines[0] if newlines.size else a.size)]
    if commas.size != n * (width - 1):
        return None
    commas = commas.reshape(n, width - 1)
    if not ((commas[:, 0] > starts).all() and (commas[:, -1] < ends).all()):
        return None  # with the count above: every row has exactly width - 1 commas
    bounds = np.column_stack([starts - 1, commas, ends])  # field i spans (bounds[i] + 1, bounds[i + 1])
    lens = bounds[:, 1:] - bounds[:, :-1] - 1
    if (lens.max(axis=0) > 128).any():
        return None
    rows = np.arange(n, dtype=np.int64) + 2 + np.cumsum(~nonblank)[nonblank] if not nonblank.all() \
        else np.arange(2, n + 2, dtype=np.int64)
    fields = _Fields(content, bounds[:, :-1] + 1, lens)
    col = {name: i for i, name in enumerate(header)}
    sp = fields.factorize(col["service_point_id"])
    ts = fields.factorize(col["interval_start"])
    if sp is None or ts is None or any(not t for t in sp[0]):
        return None
    epochs = []
    for text in ts[0]:
        value = _parse_aware(text)
        if value is None or value == -1:
            return None
        epochs.append(value)
    start = np.asarray(epochs, dtype=np.int64)[ts[1]]
    if "channel" in col:
        ch = fields.factorize(col["channel"])
        if ch is None or any(t.lower() not in CHANNELS for t in ch[0]):
            return None
        channel = np.asarray([CHANNELS[t.lower()] for t in ch[0]], dtype=np.int8)[ch[1]]
        nets = [t.lower() == "net" for t in ch[0]]
        signed = np.asarray(nets, dtype=bool)[ch[1]] if any(nets) else None
    else:
        channel = np.zeros(n, dtype=np.int8)
        signed = None
    if "interval_minutes" in col:
        mn = fields.factorize(col["interval_minutes"])
        if mn is None or any(t not in ("5", "15", "30", "60") for t in mn[0]):
            return None
        minutes = np.asarray([int(t) for t in mn[0]], dtype=np.int16)[mn[1]]
    else:
        minutes = np.full(n, 60, dtype=np.int16)
    if "device" in col:
        dev = fields.factorize(col["device"])
        if dev is None:
            return None
        dev_unique, dev_code = dev
        if "" in dev_unique:
            blank = dev_unique.index("")
            dev_code = np.where(dev_code == blank, -1, dev_code - (dev_code > blank))
            dev_unique = dev_unique[:blank] + dev_unique[blank + 1:]
    else:
        dev_unique, dev_code = [], np.full(n, -1, dtype=np.int64)
    parsed = fields.decimals(col["kwh"])
    if parsed is None:
        return None
    kwh, empty = parsed
    if (start % (minutes.astype(np.int64) * 60)).any() or not values_plausible(kwh, start, channel, signed,
                                                                                 years=years):
        return None
    if np.count_nonzero(np.isnan(kwh)) != np.count_nonzero(empty):  # the text NaN: the general parser rejects it
        return None
    return ParsedReadings(sp_unique=sp[0], sp_code=sp[1], device_unique=dev_unique, device_code=dev_code,
                          channel=channel, start=start, minutes=minutes, kwh=kwh, rows=rows, lines=n_lines)
