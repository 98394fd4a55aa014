"""The season summary (text) and the HTML report of the demo, read back from the database after the run."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from events.choices import ParticipationStatus
from programs.choices import ProgramType

from . import fleet as fl
from .scenario import PASSWORD_NOTE, DemoResult

ZERO = Decimal("0.00")


@dataclass
class EventRow:
    pk: int
    name: str
    program: str
    window: str
    reserved: int
    skipped: dict[str, int]
    participated: int
    opted_out_before: int
    opted_out_during: int
    non_responsive: int
    kwh_avoided: Decimal
    kw_drop: Decimal
    pending: int
    chart: str = ""
    chart_note: str = ""


@dataclass
class ProgramRow:
    code: str
    name: str
    role: str
    enrolled: int
    refused: int
    events: list[EventRow] = field(default_factory=list)
    skip_reasons: dict[str, tuple[int, str]] = field(default_factory=dict)  # decision -> (count, example detail)
    kwh_avoided: Decimal = Decimal(0)
    avg_kw_drop_device: Decimal = Decimal(0)
    avg_kw_drop_event: Decimal = Decimal(0)
    credits: Decimal = ZERO
    settlements: int = 0
    note: str = ""

    @property
    def reserved(self) -> int:
        return sum(e.reserved for e in self.events)

    @property
    def participated(self) -> int:
        return sum(e.participated for e in self.events)

    @property
    def opted_out(self) -> int:
        return sum(e.opted_out_before + e.opted_out_during for e in self.events)

    @property
    def non_responsive(self) -> int:
        return sum(e.non_responsive for e in self.events)


@dataclass
class CustomerRow:
    account: str
    name: str
    origin: str
    program: str
    parts: list[tuple[str, Decimal, int, str]]  # (line code, amount, lines, what)
    total: Decimal


@dataclass
class Summary:
    programs: list[ProgramRow]
    customers: list[CustomerRow]
    export_total: Decimal
    export_lines: int
    file_total: Decimal


LINE_WHAT = {"DRBN": "enrollment bonus", "DRPK": "per-kWh event credits", "DRKW": "per-kW season credit",
             "DRMO": "monthly incentives", "DRSN": "seasonal incentive", "DREV": "per-event credits",
             "DRPN": "opt-out penalties", "DRCP": "season cap adjustment"}


def _money(value) -> str:
    value = Decimal(value or 0)
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def build_summary(result: DemoResult) -> Summary:
    from events.models import Event, Participation, Reservation
    from settlement.models import EventSettlement, SettlementLine

    exported = SettlementLine.objects.filter(customer_settlement__export_batch__isnull=False).exclude(amount=0)
    programs = []
    for role, program in result.programs.items():
        row = ProgramRow(code=program.code, name=program.name, role=role,
                         enrolled=sum(1 for s in result.sites if s.enrollment is not None
                                      and s.enrollment.program_id == program.pk),
                         refused=sum(1 for r in result.refusals if r.program == program.code))
        tz = ZoneInfo(program.time_zone)
        events = list(Event.objects.filter(pk__in=result.event_ids, program=program).order_by("start"))
        if not events:
            row.note = ("no events in this demo: the EV program's credits are monthly (no event-level measurement "
                        "data for EV chargers in the demo input)") if role == "ev" else "no events"
        drops_device: list[Decimal] = []
        for event in events:
            decisions = Counter(Reservation.objects.filter(event=event).values_list("decision", flat=True))
            for decision, detail in Reservation.objects.filter(event=event).exclude(decision="reserved").values_list(
                    "decision", "detail"):
                count, example = row.skip_reasons.get(decision, (0, detail))
                row.skip_reasons[decision] = (count + 1, example)
            parts = list(Participation.objects.filter(event=event).exclude(status="cancelled")
                         .select_related("event__program"))
            settlements = list(EventSettlement.objects.filter(event=event)
                               .select_related("program", "event", "participation__event__program"))
            ok = [s for s in settlements if s.measurement_status == "ok"]
            kwh = sum((s.kwh_avoided for s in ok), Decimal(0))
            kw_event = kwh / Decimal(str(event.duration_hours)) if event.duration_hours else Decimal(0)
            drops_device += [s.kw_drop_avg for s in ok if not s.opted_out and _took_part(s.participation)]
            ev = EventRow(
                pk=event.pk, name=event.name, program=program.code,
                window=f"{event.start.astimezone(tz):%a %Y-%m-%d %H:%M}-{event.end.astimezone(tz):%H:%M} "
                       f"{event.start.astimezone(tz).tzname()}",
                reserved=decisions.get("reserved", 0), skipped={k: v for k, v in decisions.items() if k != "reserved"},
                participated=sum(1 for p in parts if _took_part(p)),
                opted_out_before=sum(1 for p in parts if p.opted_out_at and p.opted_out_at <= event.start),
                opted_out_during=sum(1 for p in parts if p.opted_out_at and p.opted_out_at > event.start),
                non_responsive=sum(1 for p in parts if p.status == "non_responsive"),
                kwh_avoided=kwh.quantize(Decimal("0.01")), kw_drop=kw_event.quantize(Decimal("0.01")),
                pending=sum(1 for s in settlements if s.status == "pending"))
            row.kwh_avoided += kwh
            row.settlements += len(settlements)
            chart = _representative(settlements, result)
            if chart is not None:
                from settlement.charts import event_settlement_chart_svg

                ev.chart = event_settlement_chart_svg(chart)
                ev.chart_note = f"{chart.account.account_number} ({_origin(chart.account.account_number)})"
            row.events.append(ev)
        row.kwh_avoided = row.kwh_avoided.quantize(Decimal("0.01"))
        if drops_device:
            row.avg_kw_drop_device = (sum(drops_device, Decimal(0)) / len(drops_device)).quantize(Decimal("0.01"))
        if row.events:
            row.avg_kw_drop_event = (sum((e.kw_drop for e in row.events), Decimal(0)) / len(row.events)).quantize(
                Decimal("0.01"))
        row.credits = Decimal(exported.filter(program=program).aggregate(s=Sum("amount"))["s"] or 0).quantize(
            Decimal("0.01"))
        programs.append(row)

    customers = []
    by_account: dict[tuple[str, str], dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    names = {}
    for acct, name_first, name_last, code, line_code, amount in exported.values_list(
            "account__account_number", "account__customer__first_name", "account__customer__last_name",
            "program__code", "line_code", "amount").order_by("account__account_number", "id"):
        by_account[(acct, code)][line_code].append(amount)
        names[acct] = f"{name_first} {name_last}"
    for (acct, code), kinds in sorted(by_account.items()):
        parts = [(lc, sum(v, ZERO), len(v), LINE_WHAT.get(lc, lc)) for lc, v in kinds.items()]
        customers.append(CustomerRow(acct, names[acct], _origin(acct), code, parts, sum((p[1] for p in parts), ZERO)))
    export = result.export
    file_total, file_lines = ZERO, 0
    if result.export_path and result.export_path.exists():
        for line in csv.DictReader(io.StringIO(result.export_path.read_text())):
            file_total += Decimal(line["amount"])
            file_lines += 1
    return Summary(programs=programs, customers=customers,
                   export_total=export.total_amount if export else ZERO, export_lines=file_lines,
                   file_total=file_total)


def _origin(account_number: str) -> str:
    kind = account_number.split("-")[1] if account_number.count("-") >= 2 else ""
    return {"GB": "real Green Button data", "SD": fl.DERIVED, "SY": fl.SYNTHETIC}.get(kind, "no interval data")


def _took_part(participation) -> bool:
    """Whether the participant took part: the device's outcome says so, or (a peak-time rebate: no device, no
    outcome report) the customer was notified and did not opt out (settled on the meter)."""
    if participation.status == "participated":
        return True
    return (participation.event.program.program_type == ProgramType.PEAK_TIME_REBATE
            and participation.status == ParticipationStatus.DISPATCHED and participation.opted_out_at is None)


def _representative(settlements, result: DemoResult):
    """A settlement to chart for the event: a real meter's participation when there is one, the largest kWh."""
    ok = [s for s in settlements if s.measurement_status == "ok" and _took_part(s.participation)]
    if not ok:
        return None
    ok.sort(key=lambda s: (_origin(s.account.account_number) != "real Green Button data", -s.kwh_avoided))
    return ok[0]


def summary_text(result: DemoResult, summary: Summary) -> str:
    out: list[str] = []
    w = out.append
    w("")
    w("=" * 100)
    w(f"cpm demo: summer {2011} demand-response season, Green Button meter data to bill credits")
    w("=" * 100)
    mode = ("REAL interval data (Green Button files) plus synthetic-derived copies"
            if result.data_mode == "real" else "SYNTHETIC interval data (no Green Button file found)")
    w(f"Data: {mode}. Database: {result.database}; tasks: "
      f"{'eager (in-process)' if result.eager else 'Celery worker via the broker'}. The demo starts clean "
      "(database flushed).")
    for note in result.notes:
        w(f"NOTE: {note}")
    if result.openadr3:
        w(result.openadr3 + ".")
    if result.files:
        w("")
        w("Green Button files (one service point each, loaded through the Green Button importer):")
        for f in result.files:
            w(f"  {f['file']}: {f.get('label', '')} - {f.get('period', '')} {f.get('zone', '')} -> {f['use']}")
    w("")
    w("Refused enrollment requests (every reason the eligibility engine found):")
    for r in result.refusals:
        w(f"  {r.who} -> {r.program}: HTTP {r.status}")
        for code, message in r.reasons:
            w(f"      [{code}] {message}")
    for p in summary.programs:
        w("")
        w(f"Program {p.name} [{p.code}]")
        w(f"  enrolled: {p.enrolled}, refused: {p.refused}; events: {len(p.events)}" + (f" ({p.note})" if p.note
                                                                                       else ""))
        if p.events:
            w(f"  reserved: {p.reserved} (over all events); took part: {p.participated}; opted out: "
              f"{p.opted_out}; non-responsive: {p.non_responsive}")
            for decision, (count, example) in sorted(p.skip_reasons.items()):
                w(f"  skipped ({decision}): {count} - e.g. \"{example}\"")
            w(f"  kWh avoided: {p.kwh_avoided}; average kW drop per participating device: {p.avg_kw_drop_device} kW;"
              f" average fleet kW drop per event: {p.avg_kw_drop_event} kW")
            w(f"  {'event':44} {'window (local)':32} {'res':>4} {'part':>4} {'out<':>4} {'out>':>4} {'n/r':>4} "
              f"{'kWh':>8} {'kW':>7}")
            for e in p.events:
                w(f"  {e.name[:44]:44} {e.window[:32]:32} {e.reserved:4d} {e.participated:4d} "
                  f"{e.opted_out_before:4d} {e.opted_out_during:4d} {e.non_responsive:4d} {e.kwh_avoided:8} "
                  f"{e.kw_drop:7}" + (f"  ({e.pending} pending)" if e.pending else ""))
        w(f"  credits exported: {_money(p.credits)}")
    w("")
    w("Credits per customer (exported bill-credit lines, by line code):")
    for c in summary.customers:
        parts = " + ".join(f"{lc} {_money(amount)} ({n} line{'s' if n > 1 else ''}, {what})"
                           for lc, amount, n, what in c.parts)
        w(f"  {c.account} {c.name[:18]:18} [{c.origin}] {c.program}: {parts} = {_money(c.total)}")
    w("")
    if result.export is not None:
        w(f"Bill-credit export: {result.export_path} ({summary.export_lines} lines, file total "
          f"{_money(summary.file_total)}, batch total in the database {_money(summary.export_total)})")
    w(f"HTML report: {result.report_path}")
    w("")
    w(messages_text(result))
    w("")
    w("Explore it in the admin: run `make serve` and open http://127.0.0.1:8000/admin/ "
      "(CSR page: http://127.0.0.1:8000/csr/). Users (" + PASSWORD_NOTE + "):")
    for username, role, password in result.users:
        w(f"  {username:20} {password:20} {role}")
    w("")
    w("Timings (seconds since start): " + ", ".join(f"{k.split(':')[0][:40]} {v}"
                                                     for k, v in list(result.timings.items())[-6:]))
    return "\n".join(out)


def credits_chart_svg(summary: Summary) -> str:
    """A horizontal bar chart of exported credits per customer (matplotlib SVG, no scripts)."""
    from matplotlib.figure import Figure

    rows = sorted(summary.customers, key=lambda c: c.total)
    if not rows:
        return ""
    from matplotlib.patches import Patch

    colors = {"real Green Button data": "#1f77b4", fl.DERIVED: "#9ecae1", fl.SYNTHETIC: "#fdae6b"}
    other = "#bbbbbb"  # no interval data: batteries (device telemetry), EV chargers (monthly credits)
    fig = Figure(figsize=(8, max(2.5, 0.22 * len(rows) + 1)), dpi=96)
    ax = fig.subplots()
    ax.barh([f"{c.account} {c.program}" for c in rows], [float(c.total) for c in rows],
            color=[colors.get(c.origin, other) for c in rows])
    ax.set_xlabel("Credits ($)")
    ax.set_title("Bill credits per customer and program, by the origin of the customer's meter data", fontsize=9)
    origins = list(dict.fromkeys(c.origin for c in rows))
    ax.legend(handles=[Patch(color=colors.get(o, other), label=o) for o in origins], fontsize=7, loc="lower right")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def write_html(result: DemoResult, summary: Summary, path: Path) -> Path:
    for program in summary.programs:
        for event in program.events:
            event.chart = mark_safe(event.chart)  # noqa: S308 - SVG made by matplotlib from our numbers
    html = render_to_string("demo/report.html", {
        "result": result, "summary": summary, "credits_chart": mark_safe(credits_chart_svg(summary)),  # noqa: S308
        "generated": dt.datetime.now(dt.UTC), "password_note": PASSWORD_NOTE,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path


def messages_text(result: DemoResult) -> str:
    """Customer messages of the season by kind and status, and the outbox files the file backends wrote."""
    from django.db.models import Count

    from cpm.notifications.models import Message

    counts: dict[str, dict[str, int]] = {}
    labels = dict(Message._meta.get_field("kind").choices)
    for kind, status, n in (Message.objects.values_list("kind", "status").annotate(n=Count("pk"))
                            .order_by("kind", "status")):
        counts.setdefault(kind, {})[status] = n
    outbox = result.outbox_dir
    emails = len(list((outbox / "email").glob("*.eml"))) if outbox and (outbox / "email").exists() else 0
    sms = len(list((outbox / "sms").glob("*.txt"))) if outbox and (outbox / "sms").exists() else 0
    lines = [f"Customer messages ({outbox}: {emails} e-mails, {sms} SMS; one file per message sent):"]
    for kind, by_status in counts.items():
        detail = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        lines.append(f"  {labels.get(kind, kind):24} {sum(by_status.values()):5d}  ({detail})")
    if not counts:
        lines.append("  none")
    return "\n".join(lines)
