"""The benchmark harness: ``make bench`` (``python -m bench``).

    make bench                                   # N = 100,000, all steps
    make bench BENCH_ARGS="--n 10000"            # another N
    make bench BENCH_ARGS="--n 10000 --n 100000 --write-markdown"   # growth from 10k to 100k, appended to BENCHMARKS.md
    make bench BENCH_ARGS="--n 100000,1000000 --large-steps reservation,settlement --write-markdown"   # issue 20

From N = 1,000,000 on the figures are checked against issue 20's targets (reservation <= 30 s, settlement <= 1.5x a
plain read, customer settlement <= 120 s), each step runs once (``--runs``) and ``--large-steps`` may leave steps out.

Needs PostgreSQL: ``DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/cpm_bench, created when missing; the
harness owns it and truncates its tables). Every step works on the one population of ``bench.seed`` (the
settlement step adds the 45-day interval data of the event it settles). ``--workers K`` (default 2) also runs
reservation and settlement through 1 and K Celery worker processes (Redis broker ``$BENCH_BROKER_URL``, default
redis://127.0.0.1:6379/8).

Each step runs as a subprocess (``python -m bench.reservation --n N ...``) so its peak memory is its own; each prints
a final ``BENCH_JSON {...}`` line that the harness collects. Then it prints one table: reservation time for one
event; interval loading rate; event settlement time; customer settlement time; peak memory and SQL queries of each
step; the floors measured in the same run (plain SQL read of the same readings, plain COPY of the same CSV into a
bare table) with our time as a ratio of each; the load average during each figure; the pages (median, p95, queries);
and with several N, how each time grows against the growth of N. Raw results: var/bench/<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from .common import DEFAULT_URL, bench_database_error, ensure_database

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("reservation", "loading", "settlement", "pages")


# ------------------------------------------------------------------------------------------------------- machine
def machine(url: str) -> dict:
    """nproc, memory, CPU model (/proc/cpuinfo), PostgreSQL version, Python, the commit, the date."""
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "python": platform.python_version()}
    try:
        mem = Path("/proc/meminfo").read_text()
        info["memory_gb"] = round(int(re.search(r"MemTotal:\s+(\d+)", mem).group(1)) / 2**20, 1)
        cpu = Path("/proc/cpuinfo").read_text()
        found = re.search(r"model name\s*:\s*(.+)", cpu)
        info["cpu"] = found.group(1).strip() if found else platform.processor()
    except OSError:
        pass
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            info["postgresql"] += ", random_page_cost " + conn.execute("SHOW random_page_cost").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - the description is best effort
        info["postgresql"] = f"unknown ({exc.__class__.__name__})"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------------------------------------------ the steps
def run_step(step: str, args: list[str], env: dict, log) -> dict:
    """Run ``python -m bench.<step> args``, echo its output, return its last BENCH_JSON (plus wall time, exit code)."""
    cmd = [sys.executable, "-m", f"bench.{step}", *args]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        log.write(line)
        if not line.startswith("BENCH_JSON "):
            print("   ", line, end="", flush=True)
    code = proc.wait()
    text = "".join(lines)
    found = [x for x in lines if x.startswith("BENCH_JSON ")]
    result: dict = {}
    if found:
        try:
            result = json.loads(found[-1].removeprefix("BENCH_JSON "))
        except json.JSONDecodeError:
            result = {}
    result.update(wall_s=round(time.perf_counter() - t0, 1), exit_code=code, start_load=env.get("_BENCH_LOAD"))
    if code != 0:
        result["error"] = text.strip().splitlines()[-1][:300] if text.strip() else f"exit {code}"
    return result


LARGE_N = 1_000_000  # from here on the issue 20 targets apply, each step runs once, and --large-steps choose the steps


def steps_for(n: int, opts) -> list[str]:
    """The steps run at size ``n``: ``--large-steps`` from ``LARGE_N`` on when given, else ``--steps``."""
    return opts.large_steps if n >= LARGE_N and opts.large_steps else opts.steps


def runs_for(n: int, opts) -> list[str]:
    """``--runs R`` for the timed steps: given, or 1 from ``LARGE_N`` on (one run of 1,000,000 is minutes), else each
    step's own default (the best of 2-3)."""
    runs = opts.runs if opts.runs else (1 if n >= LARGE_N else None)
    return ["--runs", str(runs)] if runs else []


def run_n(n: int, opts, env: dict, log) -> dict:
    results: dict = {"n": n}
    runs = runs_for(n, opts)
    for step in steps_for(n, opts):
        env["_BENCH_LOAD"] = f"{os.getloadavg()[0]:.2f}"
        if step == "reservation":
            extra = ["--workers", str(opts.workers)] if opts.workers else []
            results[step] = run_step(step, ["--n", str(n), "--history", str(opts.history), *runs, *extra], env, log)
        elif step == "loading":
            results[step] = run_step(step, ["--n", str(n), "--days", str(opts.days), "--history", str(opts.history),
                                            *runs], env, log)
        elif step == "settlement":
            extra = ["--workers", str(opts.workers)] if opts.workers else []
            results[step] = run_step(step, ["--n", str(n), "--history", str(opts.history), *runs, *extra], env, log)
        elif step == "pages":
            results[step] = run_step(step, ["--n", str(n), "--history", str(opts.history), "--repeat",
                                            str(opts.repeat)], env, log)
    return results


# -------------------------------------------------------------------------------------------------------- output
def _num(value, fmt: str = "{:,.2f}") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        return fmt.format(value)
    return str(value)


def _check(ok) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def targets_for(n: int) -> dict:
    """The targets a figure is checked against at size ``n``: up to 100,000 those of the first benchmarks (2026-11-30);
    from ``LARGE_N`` on those of issue 20 (reservation of one event <= 30 s, settlement <= 1.5x a plain read of the
    same readings, season-end customer settlement <= 120 s; no target for the event settlement's own time)."""
    if n >= LARGE_N:
        return {"reserve_s": 30.0, "settle_s": None, "ratio": 1.5, "customer_s": 120.0}
    return {"reserve_s": 20.0, "settle_s": 60.0, "ratio": 3.0, "customer_s": None}


def _at_most(value, limit, fmt: str) -> tuple[str, str]:
    """(target text, met?) of ``value <= limit``; ``limit`` None: no target."""
    if limit is None:
        return "-", "-"
    return "<= " + fmt.format(limit), _check(None if value is None else value <= limit)


def summary_rows(r: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, value, target, met?, load) rows for one N (targets by ``targets_for``)."""
    rows = []
    goal = targets_for(r.get("n") or 0)
    res, lo, se, pg = (r.get(k) or {} for k in ("reservation", "loading", "settlement", "pages"))

    def get(d, k):
        return d.get(k) if isinstance(d, dict) else None

    if res:
        t = get(res, "reserve_s")
        rows += [("Reservation, one event (s)", _num(t), *_at_most(t, goal["reserve_s"], "{:.0f} s"),
                  _num(get(res, "load"))),
                 ("Reservation SQL queries (spans of CPM_CHUNK_SIZE)",
                  _num(get(res, "queries"), "{:d}") + (f" ({res['spans']} spans)" if get(res, "spans") else ""),
                  "constant per span", "-", ""),
                 ("Reservation peak RSS (MB)", _num(get(res, "peak_rss_mb"), "{:,.0f}"),
                  *_at_most(get(res, "peak_rss_mb"), 1024, "{:.0f}"), "")]
        if get(res, "distributed"):
            for k, v in sorted(res["distributed"].items(), key=lambda kv: int(kv[0])):
                target, met = _at_most(v.get("s"), goal["reserve_s"], "{:.0f} s")
                same = "identical" if v.get("identical") else "DIFFERENT"
                rows.append((f"Reservation via Celery, {k} worker process(es) (s)", _num(v.get("s")), target,
                             same if met == "-" else f"{met}, {same}", _num(v.get("load"))))
            rows.append((f"Reservation speed-up, {res.get('workers')} workers vs 1", _num(get(res, "speedup")) + "x",
                         "", "-", ""))
        if get(res, "error"):
            rows.append(("Reservation ERROR", res["error"], "", "NOT met", ""))
    if lo:
        rate, ratio = get(lo, "readings_per_s"), get(lo, "ratio_of_copy_rate")
        rows += [("Interval loading (readings/s)", _num(rate, "{:,.0f}"), ">= 200,000",
                  _check(None if rate is None else rate >= 200_000), _num(get(lo, "load"))),
                 ("Floor: plain COPY of the same CSV (readings/s)", _num(get(lo, "plain_copy_readings_per_s"),
                                                                         "{:,.0f}"), "", "-",
                  _num(get(lo, "plain_load"))),
                 ("Loading rate as % of plain COPY", _num(None if ratio is None else 100 * ratio, "{:.0f} %"),
                  ">= 30 %", _check(None if ratio is None else ratio >= 0.30), ""),
                 ("Loading time / plain COPY time", _num(get(lo, "time_ratio")) + "x", "", "-", ""),
                 ("Loading SQL queries", _num(get(lo, "queries"), "{:d}"), "", "-", ""),
                 ("Loading peak RSS (MB)", _num(get(lo, "peak_rss_mb"), "{:,.0f}"),
                  *_at_most(get(lo, "peak_rss_mb"), 1024, "{:.0f}"), "")]
        if get(lo, "error"):
            rows.append(("Loading ERROR", lo["error"], "", "NOT met", ""))
    if se:
        t, ratio, customer = get(se, "settle_s"), get(se, "ratio"), get(se, "customer_settlement_s")
        read = get(se, "plain_read_s")
        rows += [("Event settlement (s)", _num(t), *_at_most(t, goal["settle_s"], "{:.0f} s"),
                  _num(get(se, "load") or get(se, "start_load"))),
                 ("Floor: plain SQL read of the same readings (s)", _num(read), "", "-", ""),
                 ("Settlement time / plain read", _num(ratio) + "x" if ratio is not None else "-",
                  *_at_most(ratio, goal["ratio"], "{:g}x"), ""),
                 ("Season-end customer settlement (s)", _num(customer),
                  *_at_most(customer, goal["customer_s"], "{:.0f} s"), ""),
                 ("Settlement SQL queries", _num(get(se, "queries"), "{:,.0f}"), "", "-", ""),
                 ("Settlement peak RSS (MB)", _num(get(se, "peak_rss_mb"), "{:,.0f}"),
                  *_at_most(get(se, "peak_rss_mb"), 1024, "{:.0f}"), "")]
        through = [(1, get(se, "settle_1_worker_s"))]
        if get(se, "workers") and se["workers"] > 1:
            through.append((se["workers"], get(se, f"settle_{se['workers']}_workers_s")))
        same = "-" if get(se, "identical") is None else ("identical" if se["identical"] else "DIFFERENT")
        for k, seconds in through:
            if seconds is None:
                continue
            rows.append((f"Event settlement via Celery, {k} worker process(es) (s)", _num(seconds), "", same, ""))
            if read:
                rows.append((f"Event settlement via {k} worker process(es) / plain read", f"{seconds / read:.2f}x",
                             *_at_most(seconds / read, goal["ratio"], "{:g}x"), ""))
        if get(se, "speedup") is not None:
            rows.append((f"Settlement speed-up, {get(se, 'workers')} workers vs 1", _num(se["speedup"]) + "x", "",
                         "-", ""))
        if get(se, "error"):
            rows.append(("Settlement ERROR", se["error"], "", "NOT met", ""))
    if pg and pg.get("pages"):
        worst = max(pg["pages"].items(), key=lambda kv: kv[1]["median_ms"])
        rows.append((f"Pages: slowest median (ms), {worst[0]}", _num(worst[1]["median_ms"], "{:,.0f}"), "<= 300",
                     _check(worst[1]["median_ms"] <= 300), _num(pg.get("load"))))
    return rows


def table(headers: list[str], rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join([line, sep, *body])


def pages_table(runs: list[dict]) -> str | None:
    names: list[str] = []
    for r in runs:
        for name in (r.get("pages") or {}).get("pages", {}):
            if name not in names:
                names.append(name)
    if not names:
        return None
    headers = ["page"]
    for r in runs:
        headers += [f"median ms N={r['n']:,}", f"p95 ms N={r['n']:,}", f"queries N={r['n']:,}"]
    if len(runs) > 1:
        # A count over 10,000 rows is the planner's estimate (one EXPLAIN, no COUNT): one query fewer at large N.
        headers.append("queries grow with N")
    rows = []
    for name in names:
        row = [name]
        counts = []
        for r in runs:
            p = (r.get("pages") or {}).get("pages", {}).get(name)
            row += [_num(p and p["median_ms"], "{:,.0f}"), _num(p and p["p95_ms"], "{:,.0f}"),
                    _num(p and p["queries"], "{:d}")]
            counts.append(p and p["queries"])
        if len(runs) > 1:
            known = [c for c in counts if c is not None]
            grows = any(b > a for a, b in zip(known, known[1:], strict=False))
            row.append("-" if len(known) < 2 else "YES" if grows else "no")
        rows.append(tuple(row))
    return table(headers, rows)


GROWTH = [("Reservation", "reservation", "reserve_s"), ("Interval loading", "loading", "load_s"),
          ("Plain COPY", "loading", "plain_copy_s"), ("Event settlement", "settlement", "settle_s"),
          ("Plain SQL read", "settlement", "plain_read_s"),
          ("Customer settlement", "settlement", "customer_settlement_s"),
          ("Reservation peak RSS", "reservation", "peak_rss_mb"), ("Loading peak RSS", "loading", "peak_rss_mb"),
          ("Settlement peak RSS", "settlement", "peak_rss_mb")]


def growth_table(runs: list[dict]) -> str | None:
    """How each figure grows between consecutive N, against the growth of N (times must grow no faster)."""
    if len(runs) < 2:
        return None
    rows = []
    for a, b in zip(runs, runs[1:], strict=False):
        n_factor = b["n"] / a["n"]
        for label, step, key in GROWTH:
            va, vb = (a.get(step) or {}).get(key), (b.get(step) or {}).get(key)
            if not va or vb is None:
                continue
            factor = vb / va
            is_memory = key == "peak_rss_mb"
            verdict = ("flat" if factor <= 1.5 else "GROWS") if is_memory else (
                "<= linear" if factor <= n_factor * 1.05 else "FASTER than linear")
            rows.append((label, f"{a['n']:,} -> {b['n']:,}", _num(va), _num(vb), f"{factor:.2f}x",
                         f"{n_factor:.0f}x", verdict))
    return table(["figure", "N", "before", "after", "growth", "N growth", "verdict"], rows)


def report(info: dict, runs: list[dict], opts) -> str:
    parts = [f"Date {info.get('date')}; {info.get('nproc')} CPUs ({info.get('cpu')}), {info.get('memory_gb')} GB "
             f"RAM; PostgreSQL {info.get('postgresql')}; Python {info.get('python')}; commit {info.get('commit')}; "
             f"load average at start {info.get('load_at_start')}."]
    headers = ["figure", "target"]
    merged: dict[str, dict[int, tuple[str, str, str]]] = {}  # figure -> N -> (target, value, load)
    for r in runs:
        for fig, value, target, ok, load in summary_rows(r):
            merged.setdefault(fig, {})[r["n"]] = (target, f"{value} ({ok})" if ok not in ("-", "") else value, load)
    for r in runs:
        headers += [f"N={r['n']:,}", f"load N={r['n']:,}"]
    rows = []
    for fig, by_n in merged.items():
        targets = {n: t for n, (t, _, _) in by_n.items()}
        if len(set(targets.values())) > 1:  # targets that depend on N (``targets_for``): each with its N
            target = "; ".join(f"N={n:,}: {t}" for n, t in targets.items() if t not in ("", "-"))
        else:
            target = next(iter(targets.values()))
        row = [fig, target]
        for r in runs:
            _, v, load = by_n.get(r["n"], ("", "-", ""))
            row += [v, load or ""]
        rows.append(tuple(row))
    parts.append(table(headers, rows))
    pages = pages_table([{"n": r["n"], "pages": r["pages"]} for r in runs if r.get("pages")])  # sizes that ran it
    if pages:
        parts.append("Pages (Django test client in process, superuser, median and p95 of "
                     f"{opts.repeat} requests after one warm-up; queries of one request):\n\n" + pages)
    growth = growth_table(runs)
    if growth:
        parts.append("Growth with N:\n\n" + growth)
    return "\n\n".join(parts)


def write_markdown(path: Path, text: str, info: dict, ns: list[int]) -> None:
    header = ("# Benchmarks\n\nMeasured with `make bench` (`python -m bench`, see bench/__main__.py). Each run below "
              "is appended by `--write-markdown`.\n")
    existing = path.read_text() if path.exists() else header
    section = f"\n## Run of {info.get('date')}: N = {', '.join(f'{n:,}' for n in ns)}\n\n{text}\n"
    path.write_text(existing.rstrip("\n") + "\n" + section)


def report_from(path: Path, opts) -> int:
    """Print the report of the raw results ``path`` (``{"machine": ..., "runs": [...]}``, as a run writes them) and
    append it to ``opts.write_markdown`` when set: a run's figures are kept even if its report was not written."""
    try:
        raw = json.loads(path.read_text())
        info, runs = raw["machine"], raw["runs"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"{path}: not the raw results of a run ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 2
    print(publish(info, runs, opts))
    return 0


def publish(info: dict, runs: list[dict], opts) -> str:
    """The report of ``runs``, appended to ``opts.write_markdown`` (relative to the repository) when set."""
    text = report(info, runs, opts)
    if opts.write_markdown:
        path = Path(opts.write_markdown)
        write_markdown(path if path.is_absolute() else ROOT / path, text, info, [r["n"] for r in runs])
        text += f"\n\nAppended to {opts.write_markdown}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", action="append", type=lambda s: [int(x.replace("_", "")) for x in s.split(",")],
                        help="Size(s) N (repeat or comma-separate; default 100000).")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"Comma-separated subset of {', '.join(STEPS)}.")
    parser.add_argument("--large-steps", default="", help=f"The steps from N = {LARGE_N:,} on (default: --steps).")
    parser.add_argument("--runs", type=int, default=0, help="Timed runs of each step (the best is reported; default: "
                                                            f"each step's own, 1 from N = {LARGE_N:,} on).")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes for the scale-out runs "
                                                               "(0 = skip them).")
    parser.add_argument("--history", type=int, default=6, help="Past events in the seeded season.")
    parser.add_argument("--days", type=int, default=1, help="Days of hourly readings in the loading step.")
    parser.add_argument("--repeat", type=int, default=20, help="Requests per page.")
    parser.add_argument("--write-markdown", nargs="?", const="BENCHMARKS.md", default=None, metavar="PATH",
                        help="Append the results to BENCHMARKS.md (or PATH).")
    parser.add_argument("--report-from", metavar="JSON", default=None,
                        help="Measure nothing: print (and with --write-markdown append) the report of the raw "
                             "results of an earlier run (var/bench/<stamp>.json).")
    opts = parser.parse_args()
    if opts.report_from:
        return report_from(Path(opts.report_from), opts)
    ns = sorted({n for group in (opts.n or [[100_000]]) for n in group})
    opts.steps = [s.strip() for s in opts.steps.split(",") if s.strip()]
    opts.large_steps = [s.strip() for s in opts.large_steps.split(",") if s.strip()]
    unknown = set(opts.steps + opts.large_steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not urlparse(url).scheme.startswith("postgres"):
        parser.error("the benchmarks need PostgreSQL: DATABASE_URL=postgres://...")
    if (error := bench_database_error(url)) is not None:
        parser.error(error)
    ensure_database(url)
    env = dict(os.environ, DATABASE_URL=url, PYTHONUNBUFFERED="1")
    info = machine(url)
    info["load_at_start"] = f"{os.getloadavg()[0]:.2f}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    with open(out_dir / f"{stamp}.log", "w") as log:
        for n in ns:
            print(f"\n=== N = {n:,} ===", flush=True)
            runs.append(run_n(n, opts, env, log))
            (out_dir / f"{stamp}.json").write_text(json.dumps({"machine": info, "runs": runs}, indent=1,
                                                             default=str))
    print("\n" + publish(info, runs, opts))
    print(f"\nRaw results: {out_dir / f'{stamp}.json'}")
    failed = [f"N={r['n']} {s}" for r in runs for s in steps_for(r["n"], opts) if (r.get(s) or {}).get("exit_code")]
    if failed:
        print("Failed steps: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
