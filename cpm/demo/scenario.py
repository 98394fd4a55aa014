"""The demo scenario: a summer 2011 DR season, step by step, through the public services and tasks of every app.

Simulated time: every service gets a ``now`` in 2011 (setup in May, events on the hottest summer weekdays, season-end
settlement on 2011-10-03). Tasks run where the environment sends them: eagerly in-process on the embedded default,
or on a Celery worker when ``CELERY_BROKER_URL`` is set; the demo then waits for their results by polling the
records they write (reservations, meter data loads, settlement batches), with a timeout.

The demo starts clean: it flushes the database first. It refuses to when the database holds data it did not create
(customers or users without the ``DEMO-`` / ``demo-`` prefixes) unless ``force_flush`` is set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction

from cpm.base.capabilities import SystemActor, system_actor

from . import fleet as fl
from . import simulation as sim

UTC = dt.UTC
PACIFIC = ZoneInfo("America/Los_Angeles")
EASTERN = ZoneInfo("America/New_York")
YEAR = 2011
SEASON_FIRST, SEASON_LAST = dt.date(YEAR, 6, 1), dt.date(YEAR, 9, 30)
SETUP_AT = dt.datetime(YEAR, 5, 2, 9, 0, tzinfo=PACIFIC).astimezone(UTC)
BILLING_TICK_AT = dt.datetime(YEAR, 6, 1, 1, 0, tzinfo=PACIFIC).astimezone(UTC)
SEASON_END_AT = dt.datetime(YEAR, 10, 3, 10, 0, tzinfo=EASTERN).astimezone(UTC)
PASSWORD_NOTE = "demo passwords, printed on purpose: fine for a local demo, never for a real deployment"

# (username, role group or None for superuser, password)
DEMO_USERS = [
    ("demo-admin", None, "demo-admin-2011"),
    ("demo-program-admin", "Program administrator", "demo-program-2011"),
    ("demo-csr", "CSR", "demo-csr-2011"),
    ("demo-analyst", "Settlement analyst", "demo-analyst-2011"),
    ("demo-auditor", "Auditor", "demo-auditor-2011"),
]
FIRST_NAMES = ["Maria", "James", "Linh", "Robert", "Aisha", "David", "Sofia", "Michael", "Priya", "Daniel", "Elena",
               "Kevin", "Grace", "Omar", "Hannah", "Luis", "Mei", "Thomas", "Fatima", "Jonah", "Rosa", "Samuel"]
LAST_NAMES = ["Garcia", "Nguyen", "Smith", "Johnson", "Patel", "Kim", "Lopez", "Brown", "Chen", "Davis", "Martinez",
              "Wilson", "Anderson", "Hernandez", "Moore", "Taylor", "Clark", "Lewis", "Walker", "Young"]
CA_TOWNS = ["Riverside", "Fontana", "Palm Springs", "Long Beach", "Irvine", "Pasadena", "Santa Barbara", "Ontario"]


class DemoError(RuntimeError):
    """The demo could not finish (says what it was waiting for, or what is wrong)."""


def demo_actor(part: str = "") -> SystemActor:
    """The named system actor of a step the demo plays without a person: ``system:demo`` or ``system:demo:<part>``
    (the CIS feed, the device cloud, the customer portal, an aggregator's outcome report, the AMI head-end, the
    events tick in simulated time). Where a person acts (the program administrator defines programs and events, the
    CSR enrolls and declares unavailability, the analyst loads meter data, approves and exports), the demo acts as
    that role's user, so the real capability checks run."""
    return system_actor(f"demo:{part}" if part else "demo")


@dataclass
class Options:
    quick: bool = False
    seed: int = 2011
    greenbutton_dir: Path | None = None
    out_dir: Path | None = None
    timeout: float = 300.0
    force_flush: bool = False

    @property
    def derived_homes(self) -> int:
        return 2 if self.quick else 30

    @property
    def battery_homes(self) -> int:
        return 3 if self.quick else 10

    @property
    def ev_homes(self) -> int:
        return 2 if self.quick else 5

    @property
    def thermostat_events(self) -> int:
        return 3 if self.quick else 10

    @property
    def battery_events(self) -> int:
        return 2 if self.quick else 8

    @property
    def ptr_homes(self) -> int:
        return 3 if self.quick else 8

    @property
    def ptr_events(self) -> int:
        return 2 if self.quick else 5


# The demo's peak-time rebate (no device: the customer is told, and paid on the meter against a baseline), from
# Portland General Electric's Peak Time Rebates, as the stored facts about real programs describe it
# (/work/shared/data/programs/real-programs.json, notes of "pge-or-smart-thermostat"; source
# https://portlandgeneral.com/peak-time-events): $1 per kWh below a baseline of the same hours of the past 10
# similar days, summer events on weekdays 3-8 pm of up to 4 hours, a notice the day before and on the day.
PTR_PROGRAM = {
    "code": "pge-or-peak-time-rebates", "name": "PGE Peak Time Rebates",
    "description": (
        "Modelled on Portland General Electric's Peak Time Rebates (https://portlandgeneral.com/peak-time-events): "
        "no device; customers are told the day before an event and on the day, and earn $1 for each kWh they use "
        "below their baseline (the same hours of the past 10 similar days; here CAISO 10-in-10 with its day-of "
        "adjustment) during the event. Summer weekdays, 3-8 pm, events of up to 4 hours."),
    "program_type": "peak_time_rebate", "time_zone": "America/Los_Angeles", "requires_device": False,
    "eligible_device_types": [], "eligible_territories": ["PGE-OR"], "eligible_customer_classes": ["residential"],
    "settlement_timing": "after_event", "performance_measurement": "meter_baseline",
    "baseline_method": "caiso-10-in-10", "holiday_calendar": "NERC",
}
PTR_RULE = {"effective_from": dt.date(2000, 1, 1), "weekdays_allowed": True, "weekends_allowed": False,
            "holidays_allowed": False, "window_start": dt.time(15), "window_end": dt.time(20),
            "max_duration_minutes": 240}
PTR_INCENTIVE = {"kind": "performance_kwh", "basis": "per_kwh", "amount": Decimal("1.00"),
                 "description": "$1 per kWh below the baseline during the event."}


@dataclass
class Site:
    """A demo customer with one account, premise, service point and (usually) one device."""

    key: str  # DEMO-GB-0001 style: GB real Green Button, SD synthetic-derived, SY synthetic, XX no interval data
    origin: str
    label: str
    program_role: str  # thermostat, battery, ev
    series: fl.LoadSeries | None = None
    customer: Any = None
    account: Any = None
    service_point: Any = None
    device: Any = None
    enrollment: Any = None
    capacity_kw: float = 0.0
    online: bool = True


@dataclass
class Refusal:
    who: str
    program: str
    status: int
    reasons: list[tuple[str, str]]


@dataclass
class DemoResult:
    options: Options
    data_mode: str  # "real" or "synthetic"
    files: list[dict] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    programs: dict[str, Any] = field(default_factory=dict)  # role -> Program
    event_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    export: Any = None
    export_path: Path | None = None
    report_path: Path | None = None
    users: list[tuple[str, str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    eager: bool = True
    database: str = ""
    openadr3: str = ""  # what the OpenADR 3 aggregator received and reported (cpm.demo.openadr)
    outbox_dir: Path | None = None


class Demo:
    """Runs the scenario; ``log`` receives progress lines."""

    def __init__(self, options: Options, log: Callable[[str], None] = print) -> None:
        from cpm.celery import app

        self.o = options
        self.log = log
        self.rng = np.random.default_rng(options.seed)
        self.eager = bool(app.conf.task_always_eager)
        self.result = DemoResult(options=options, data_mode="real", eager=self.eager,
                                 database=settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1])
        self.users: dict[str, Any] = {}
        self.aggregators: dict[str, Any] = {}
        self.hourly: dict[int, dict[int, float]] = {}  # service point pk -> {UTC hour: kWh} as recorded
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------------------------------------ helpers
    def _step(self, name: str) -> None:
        now = time.monotonic()
        self.result.timings[name] = round(now - self._t0, 2)
        self.log(f"[{now - self._t0:6.1f}s] {name}")

    def wait(self, what: str, done: Callable[[], bool]) -> None:
        """Poll ``done`` until true: immediately true with eager tasks; otherwise up to the timeout."""
        deadline = time.monotonic() + self.o.timeout
        while not done():
            if self.eager:
                raise DemoError(f"{what}: not done although tasks run eagerly")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {self.o.timeout:.0f} s waiting for {what}; is a Celery worker "
                                "running with the same DATABASE_URL and CELERY_BROKER_URL?")
            time.sleep(0.2)

    def run(self) -> DemoResult:
        with self._outbox():
            self.reset()
            self.create_users()
            self.load_programs()
            self.build_fleet()
            self.create_sites()
            self.load_interval_data()
            self.enroll()
            self.run_season()
            self.settle_season()
        self._step("done")
        return self.result

    @contextlib.contextmanager
    def _outbox(self):
        """Customer messages go to file backends in ``<out_dir>/outbox`` (``email/*.eml``, ``sms/*.txt``, one file
        per message), emptied first; the settings are restored afterwards."""
        out_dir = self.o.out_dir or (Path(settings.VAR_DIR) / "demo")
        outbox = out_dir / "outbox"
        shutil.rmtree(outbox, ignore_errors=True)
        outbox.mkdir(parents=True, exist_ok=True)
        self.result.outbox_dir = outbox
        saved = settings.MAILERS, settings.CPM_SMS_BACKEND, settings.CPM_NOTIFY_OUTBOX_DIR
        settings.MAILERS = {**settings.MAILERS, "notifications": {
            "BACKEND": "cpm.notifications.channels.OutboxEmailBackend"}}
        settings.CPM_SMS_BACKEND = "cpm.notifications.channels.FileSmsBackend"
        settings.CPM_NOTIFY_OUTBOX_DIR = str(outbox)
        try:
            yield outbox
        finally:
            settings.MAILERS, settings.CPM_SMS_BACKEND, settings.CPM_NOTIFY_OUTBOX_DIR = saved

    def _notify(self, when: dt.datetime) -> None:
        """The notifications tick in simulated time: plan what came due, then send the due messages (in-process, in
        one chunk: the outbox's file backends are this process's settings)."""
        from cpm.notifications.services import messages_due, messages_send, notifications_tick

        notifications_tick(now=when, actor=demo_actor("notifications.tick"))
        due = messages_due(now=when)
        if due:
            with transaction.atomic():
                messages_send(ids=due, now=when, actor=demo_actor("notifications.send"))

    # -------------------------------------------------------------------------------------------------- reset
    def reset(self) -> None:
        from enrollments.models import Customer

        User = get_user_model()
        foreign = (Customer.objects.exclude(cis_person_id__startswith="DEMO-").exists()
                   or User.objects.exclude(username__startswith="demo-").exists())
        if foreign and not self.o.force_flush:
            raise DemoError("The database holds customers or users the demo did not create; the demo starts by "
                            "erasing the database. Point DATABASE_URL at a demo database, or pass --flush to erase "
                            "this one.")
        from django.db import connection

        if connection.vendor == "sqlite":
            # A demo database: trade durability for speed (thousands of small service transactions).
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=OFF")
        call_command("flush", interactive=False, verbosity=0)
        ContentType.objects.clear_cache()
        from cpm.base.roles import sync_roles

        sync_roles()
        self._step("database flushed (the demo starts clean)")

    def create_users(self) -> None:
        User = get_user_model()
        for username, role, password in DEMO_USERS:
            if role is None:
                user = User.objects.create_superuser(username, f"{username}@example.com", password)
            else:
                user = User.objects.create_user(username, f"{username}@example.com", password, is_staff=True)
                user.groups.add(Group.objects.get(name=role))
            self.users[username] = user
            self.result.users.append((username, role or "superuser", password))

    # ----------------------------------------------------------------------------------------------- programs
    def load_programs(self) -> None:
        from programs.models import Program
        from programs.samples import DEFAULT_YEARS, sample_programs_load

        sample_programs_load(years=DEFAULT_YEARS, now=SETUP_AT, actor=self.users["demo-program-admin"])
        programs = list(Program.objects.prefetch_related("incentive_rules", "seasons", "participation_rules"))

        def pick(role: str, test) -> Any:
            found = [p for p in programs if test(p)]
            if not found:
                raise DemoError(f"no sample program fits the demo's {role} program")
            return found[0]

        kinds = lambda p: {r.kind for r in p.incentive_rules.all()}  # noqa: E731
        self.sce = pick("thermostat", lambda p: p.program_type == "thermostat_dr" and p.settlement_timing ==
                        "after_event" and p.performance_measurement == "meter_baseline" and "performance_kwh" in
                        kinds(p) and p.baseline_method.startswith("caiso"))
        self.battery = pick("battery", lambda p: p.program_type == "battery_storage" and p.settlement_timing ==
                            "season_end" and "performance_kw" in kinds(p))
        self.ev = pick("EV", lambda p: p.program_type == "ev_managed_charging")
        from programs.services import program_activate, program_create

        admin = self.users["demo-program-admin"]
        self.ptr = program_create(data=PTR_PROGRAM, seasons=[{"name": f"Summer {YEAR}", "start_date": SEASON_FIRST,
                                                              "end_date": SEASON_LAST}],
                                  participation_rules=[PTR_RULE], incentive_rules=[PTR_INCENTIVE], now=SETUP_AT,
                                  actor=admin)
        program_activate(program=self.ptr, now=SETUP_AT, actor=admin, reason="demo peak-time rebate")
        self.result.programs = {"thermostat": self.sce, "battery": self.battery, "ev": self.ev, "ptr": self.ptr}
        self._step(f"sample programs loaded ({len(programs)}); demo programs: {self.sce.code}, "
                   f"{self.battery.code}, {self.ev.code}, {self.ptr.code} (peak-time rebate, no device)")

    # ------------------------------------------------------------------------------------------------- fleet
    def build_fleet(self) -> None:
        directory = self.o.greenbutton_dir
        files = fl.find_green_button_files(directory)
        lookback_from = dt.datetime(YEAR, 4, 10, tzinfo=PACIFIC)
        season_to = dt.datetime(YEAR, 9, 30, 23, tzinfo=PACIFIC)
        annual: list[fl.LoadSeries] = []
        other: list[fl.LoadSeries] = []
        for path in files:
            try:
                series = fl.read_green_button(path)
            except Exception as exc:  # a broken file is reported, the others still run
                self.result.files.append({"file": path.name, "use": f"skipped: {exc}"})
                continue
            for s in series:
                if s.minutes == 60 and s.covers(lookback_from, season_to):
                    annual.append(s)
                    use = "thermostat customer (summer 2011 covered)"
                else:
                    other.append(s)
                    use = "EV customer in Connecticut (no 2011 summer data: no event can touch it)"
                self.result.files.append({"file": path.name, "label": s.label.split(" (")[0], "period": s.period,
                                          "zone": s.zone_hint, "use": use})
        self.thermostat_series: list[fl.LoadSeries] = list(annual)
        if annual:
            for i in range(self.o.derived_homes):
                self.thermostat_series.append(fl.derived_copy(annual[i % len(annual)], self.rng))
        else:
            self.result.data_mode = "synthetic"
            why = f"no Green Button file in {directory}" if not files else "no Green Button file covers summer 2011"
            self.result.notes.append(f"SYNTHETIC DATA: {why}; the thermostat fleet is a seeded synthetic fleet "
                                     "(accounts DEMO-SY-...). Every number below comes from synthetic load.")
            self.log(f"No real interval data ({why}): using a seeded synthetic fleet, labelled synthetic.")
            weather = fl.synthetic_weather(self.rng)
            for i in range(6 + self.o.derived_homes):
                self.thermostat_series.append(fl.synthetic_year(self.rng, weather, i + 1))
        self.other_series = other
        self._step(f"fleet: {len(annual)} real annual Green Button files, {len(other)} other files, "
                   f"{len(self.thermostat_series) - len(annual)} "
                   f"{'synthetic-derived' if annual else 'synthetic'} homes"
                   + (f" (Green Button files from {directory})" if files else ""))

    # ------------------------------------------------------------------------------------------------- sites
    # The CIS and device upserts lock the row they update (select_for_update): on PostgreSQL that needs a transaction,
    # so the demo's callers of upserts run in one each.
    @transaction.atomic
    def _aggregator(self, code: str, name: str):
        from devices.services import aggregator_upsert

        if code not in self.aggregators:
            self.aggregators[code], _ = aggregator_upsert(code=code, values={"name": name}, now=SETUP_AT,
                                                          actor=self.users["demo-program-admin"])
        return self.aggregators[code]

    @transaction.atomic
    def _site(self, site: Site, *, n: int, state: str, town: str, territory: str, rate: str,
              life_support: bool = False, phone: str = "") -> Site:
        from devices.services import premise_upsert, service_point_upsert
        from enrollments.services import account_upsert, customer_upsert, service_agreement_upsert

        actor = demo_actor("CIS import")  # the utility's customer information system feeding the demo
        first = FIRST_NAMES[int(self.rng.integers(len(FIRST_NAMES)))]
        last = LAST_NAMES[int(self.rng.integers(len(LAST_NAMES)))]
        key = site.key
        site.customer, _ = customer_upsert(cis_person_id=f"DEMO-C-{key[5:]}", values={
            "first_name": first, "last_name": last, "email": f"{first}.{last}.{n}@example.com".lower(),
            "life_support": life_support, **({"phone": phone} if phone else {})}, now=SETUP_AT, actor=actor)
        site.account, _ = account_upsert(account_number=key, customer=site.customer, opened_on=dt.date(2009, 3, 1),
                                         closed_on=None, now=SETUP_AT, actor=actor)
        premise, _ = premise_upsert(premise_id=f"DEMO-P-{key[5:]}", values={
            "address_line1": f"{100 + 7 * n} {LAST_NAMES[n % len(LAST_NAMES)]} Street", "city": town,
            "state": state, "postal_code": "", "service_territory": territory,
            "address_line2": site.origin if site.origin != fl.REAL else ""}, now=SETUP_AT, actor=actor)
        site.service_point, _ = service_point_upsert(
            service_point_id=f"SP-{key[5:]}", premise=premise, now=SETUP_AT, actor=actor,
            values={"meter_number": f"M-{key[5:]}", "customer_class": "residential", "rate_code": rate})
        service_agreement_upsert(agreement_id=f"SA-{key[5:]}", account=site.account, service_point=site.service_point,
                                 start_date=dt.date(2009, 3, 1), end_date=None, now=SETUP_AT, actor=actor)
        return site

    def _device(self, site: Site, *, aggregator, device_type: str, manufacturer: str, model: str, capacity_kw: float,
                usable_kwh: float | None = None, online: bool = True) -> None:
        from devices.services import device_heartbeat, device_install, device_register, device_set_status

        actor = self.users["demo-program-admin"]
        site.device = device_register(
            aggregator=aggregator, aggregator_device_id=f"{device_type[:3].upper()}-{site.key[5:]}",
            device_type=device_type, capacity_kw=Decimal(f"{capacity_kw:.3f}"), manufacturer=manufacturer,
            model=model, serial_number=f"SN-{device_type[:3].upper()}-{site.key[5:]}",
            usable_energy_kwh=None if usable_kwh is None else Decimal(f"{usable_kwh:.3f}"), now=SETUP_AT,
            actor=actor)
        device_install(device=site.device, service_point=site.service_point, installed_on=dt.date(YEAR, 4, 1),
                       now=SETUP_AT, actor=actor)
        device_set_status(device=site.device, status="active", now=SETUP_AT, actor=actor, reason="commissioned")
        site.capacity_kw, site.online = capacity_kw, online
        if online:
            # Reservation checks "seen online recently" against the clock of whoever runs it: the reservation task
            # runs at the real clock (on a worker too), so the device cloud reports the devices online now.
            real_now = dt.datetime.now(UTC)
            device_heartbeat(device=site.device, seen_at=real_now, now=real_now, actor=demo_actor("device cloud"))

    def create_sites(self) -> None:
        tstat = self._aggregator("demo-thermostat-cloud", "Demo thermostat cloud (OEM)")
        bat = self._aggregator("demo-battery-vpp", "Demo battery virtual power plant")
        evc = self._aggregator("demo-ev-cloud", "Demo EV charger cloud")
        from .openadr import DemoVen

        # The thermostat cloud takes its events through OpenADR 3 (cpm's VTN) and reports its outcomes back there.
        self.ven = DemoVen(tstat, now=SETUP_AT, actor=self.users["demo-program-admin"])
        tstat = self.aggregators["demo-thermostat-cloud"] = self.ven.aggregator
        sites: list[Site] = []
        rates = ["D", "TOU-D", "D-CARE", "TOU-D-T", "D-FERA"]
        prefix = {fl.REAL: "GB", fl.DERIVED: "SD", fl.SYNTHETIC: "SY"}
        n = 0
        for series in self.thermostat_series:
            n += 1
            site = Site(key=f"DEMO-{prefix[series.origin]}-{n:04d}", origin=series.origin, label=series.label,
                        program_role="thermostat", series=series)
            self._site(site, n=n, state="CA", town=CA_TOWNS[n % len(CA_TOWNS)], territory="SCE",
                       rate=rates[n % len(rates)])
            # The last one (two in the full demo) thermostats are never seen online: reservation skips them.
            online = n <= len(self.thermostat_series) - (1 if self.o.quick else 2) or series.origin == fl.REAL
            self._device(site, aggregator=tstat, device_type="thermostat", manufacturer="Acme Thermo",
                         model="T-100", capacity_kw=float(np.round(self.rng.uniform(1.2, 3.0), 1)), online=online)
            sites.append(site)
        for i in range(self.o.battery_homes):
            n += 1
            site = Site(key=f"DEMO-XX-{n:04d}", origin="no interval data", label="home battery (device telemetry)",
                        program_role="battery")
            self._site(site, n=n, state="MA", town=["Worcester", "Springfield", "Lowell", "Quincy"][i % 4],
                       territory="NGRID-MA", rate="R-1")
            cap, kwh, model = [(5.0, 13.5, "Powerwall 2"), (3.84, 10.08, "IQ Battery 10"),
                               (7.6, 20.0, "Home Battery 20")][i % 3]
            self._device(site, aggregator=bat, device_type="battery", manufacturer="Demo Storage", model=model,
                         capacity_kw=cap, usable_kwh=kwh)
            sites.append(site)
        for i in range(self.o.ev_homes):
            n += 1
            series = self.other_series[i] if i < len(self.other_series) else None
            origin = series.origin if series else "no interval data"
            site = Site(key=f"DEMO-{'GB' if series else 'XX'}-{n:04d}", origin=origin,
                        label=series.label if series else "EV charger (no interval data)", program_role="ev",
                        series=series)
            self._site(site, n=n, state="CT", town=["Hartford", "New Haven", "Stamford"][i % 3],
                       territory="EVERSOURCE-CT", rate="R-1")
            self._device(site, aggregator=evc, device_type="ev_charger", manufacturer="Demo EVSE", model="L2-48A",
                         capacity_kw=[7.2, 11.5][i % 2])
            sites.append(site)
        # Service points of the remaining other files (when there are more files than EV homes).
        for series in self.other_series[self.o.ev_homes:]:
            n += 1
            site = Site(key=f"DEMO-GB-{n:04d}", origin=series.origin, label=series.label, program_role="none",
                        series=series)
            self._site(site, n=n, state="CT", town="Hartford", territory="EVERSOURCE-CT", rate="R-1")
            sites.append(site)
        n = self._ptr_sites(sites, n)
        self.result.sites = sites
        self._step(f"{len(sites)} customers with accounts, premises, service points and devices")

    def _ptr_sites(self, sites: list[Site], n: int) -> int:
        """Peak-time rebate homes in Oregon: a service point and synthetic (seeded, labelled) hourly load, no
        device. A random stream of their own, so the other homes are the same as without them."""
        rng, self.rng = self.rng, np.random.default_rng([self.o.seed, 7])
        try:
            weather = fl.synthetic_weather(self.rng)
            for i in range(self.o.ptr_homes):
                n += 1
                site = Site(key=f"DEMO-SY-{n:04d}", origin=fl.SYNTHETIC, label="peak-time rebate home (no device)",
                            program_role="ptr", series=fl.synthetic_year(self.rng, weather, 100 + i))
                self._site(site, n=n, state="OR", town=["Portland", "Beaverton", "Gresham", "Salem"][i % 4],
                           territory="PGE-OR", rate="7", phone=f"+1503555{n:04d}")
                sites.append(site)
        finally:
            self.rng = rng
        return n

    # ----------------------------------------------------------------------------------------------- interval data
    def load_interval_data(self) -> None:
        from settlement.meterdata.loaders import meter_data_load_submit, meter_readings_load
        from settlement.models import MeterDataLoad

        loads = []
        for site in self.result.sites:
            s = site.series
            if s is None:
                continue
            if s.path is not None:
                loads.append(meter_data_load_submit(
                    source=MeterDataLoad.Source.GREEN_BUTTON, content=s.path.read_bytes(), now=SETUP_AT,
                    file_name=s.path.name, service_point_id=site.service_point.service_point_id,
                    actor=self.users["demo-analyst"]).pk)
            else:
                meter_readings_load(now=SETUP_AT, source=MeterDataLoad.Source.API, file_name=s.label[:300],
                                    arrays={"service_point": np.full(s.start.size, site.service_point.pk),
                                            "start": s.start, "kwh": s.kwh},
                                    actor=self.users["demo-analyst"])
            if site.program_role in ("thermostat", "ptr"):
                self.hourly[site.service_point.pk] = s.hourly()
        finished = (MeterDataLoad.Status.COMPLETED, MeterDataLoad.Status.COMPLETED_WITH_ERRORS,
                    MeterDataLoad.Status.FAILED)
        self.wait("the Green Button import jobs", lambda: MeterDataLoad.objects.filter(
            pk__in=loads).exclude(status__in=finished).count() == 0)
        failed = list(MeterDataLoad.objects.filter(pk__in=loads, status=MeterDataLoad.Status.FAILED))
        if failed:
            raise DemoError("Green Button import failed: " + "; ".join(f"{x.file_name}: {x.errors}" for x in failed))
        self._step(f"interval data loaded: {len(loads)} Green Button files through the importer, "
                   f"{sum(1 for s in self.result.sites if s.series and s.series.path is None)} generated series")

    # -------------------------------------------------------------------------------------------------- enroll
    def _request(self, site: Site, program, *, devices, answers, when: dt.datetime, who: str = "") -> Any:
        from enrollments.errors import EnrollmentConflictError, IneligibleError
        from enrollments.services import enrollment_request

        try:
            enrollment, _ = enrollment_request(
                account=site.account, service_point=site.service_point, program=program, source="aggregator_api",
                devices=devices, answers=answers, now=when, actor=self.users["demo-csr"],
                external_transaction_id=f"demo-{program.code}-{site.key}-{len(self.result.refusals)}-{who}")
            return enrollment
        except (IneligibleError, EnrollmentConflictError) as exc:
            status = 409 if isinstance(exc, EnrollmentConflictError) else 400
            self.result.refusals.append(Refusal(who or f"{site.key} ({site.customer})", program.code, status,
                                                [(r.code, r.message) for r in exc.reasons]))
            return None

    def enroll(self) -> None:
        sce_answers = {"central_ac": True, "medical_baseline_ac": False}
        day = 0
        for site in self.result.sites:
            when = SETUP_AT + dt.timedelta(days=day % 12, hours=day % 5)
            day += 1
            if site.program_role == "thermostat":
                site.enrollment = self._request(site, self.sce, devices=[site.device], answers=sce_answers,
                                                when=when)
            elif site.program_role == "battery":
                site.enrollment = self._request(site, self.battery, devices=[site.device],
                                                answers={"battery_interconnected": True}, when=when)
            elif site.program_role == "ev":
                site.enrollment = self._request(site, self.ev, devices=[site.device],
                                                answers={"dwelling_units": 1}, when=when)
            elif site.program_role == "ptr":
                site.enrollment = self._request(site, self.ptr, devices=[], answers={}, when=when)
        self._refusals()
        self._contact_preferences()
        # The notifications tick in simulated time over the enrollment weeks: enrollment-approved messages.
        for day in range(15):
            self._notify(SETUP_AT + dt.timedelta(days=day, hours=5))
        ok = sum(1 for s in self.result.sites if s.enrollment is not None)
        self._step(f"{ok} enrollments through the enrollment service; {len(self.result.refusals)} refused "
                   "(reasons in the summary)")

    def _contact_preferences(self) -> None:
        """Peak-time rebate customers: the second prefers SMS, the third both, the last asked for no messages (so
        it is never notified, and a peak-time rebate's event does not count for it)."""
        from cpm.notifications.services import contact_preference_set

        ptr = [s for s in self.result.sites if s.program_role == "ptr" and s.enrollment is not None]
        for site, channel in zip(ptr[1:3], ("sms", "both"), strict=False):
            contact_preference_set(customer=site.customer, channel=channel, program=self.ptr,
                                   now=SETUP_AT + dt.timedelta(days=14), actor=self.users["demo-csr"])
        if len(ptr) >= 3:
            contact_preference_set(customer=ptr[-1].customer, channel="none", program=self.ptr,
                                   now=SETUP_AT + dt.timedelta(days=14), actor=self.users["demo-csr"])

    def _refusals(self) -> None:
        """Requests that must be refused, each with every reason the eligibility engine finds."""
        when = SETUP_AT + dt.timedelta(days=13)
        tstat = self.aggregators["demo-thermostat-cloud"]
        n = len(self.result.sites)
        # 1. A residential customer on rate DM (Domestic Multiple, excluded from SCE's program).
        dm = Site(key=f"DEMO-XX-{n + 1:04d}", origin="no interval data", label="refused: ineligible rate",
                  program_role="refused")
        self._site(dm, n=n + 1, state="CA", town="Anaheim", territory="SCE", rate="DM")
        self._device(dm, aggregator=tstat, device_type="thermostat", manufacturer="Acme Thermo", model="T-100",
                     capacity_kw=2.0)
        self._request(dm, self.sce, devices=[dm.device], answers={"central_ac": True, "medical_baseline_ac": False},
                      when=when, who=f"{dm.key} ({dm.customer}), rate DM")
        # 2. A Medical Baseline air-conditioning customer with life-support equipment on file.
        mb = Site(key=f"DEMO-XX-{n + 2:04d}", origin="no interval data", label="refused: medical baseline",
                  program_role="refused")
        self._site(mb, n=n + 2, state="CA", town="Anaheim", territory="SCE", rate="D", life_support=True)
        self._device(mb, aggregator=tstat, device_type="thermostat", manufacturer="Acme Thermo", model="T-100",
                     capacity_kw=2.0)
        self._request(mb, self.sce, devices=[mb.device], answers={"central_ac": True, "medical_baseline_ac": True},
                      when=when, who=f"{mb.key} ({mb.customer}), life support / Medical Baseline")
        # 3. A neighbour offers a thermostat that another account already enrolled.
        nb = Site(key=f"DEMO-XX-{n + 3:04d}", origin="no interval data", label="refused: device already enrolled",
                  program_role="refused")
        self._site(nb, n=n + 3, state="CA", town="Anaheim", territory="SCE", rate="D")
        taken = next(s for s in self.result.sites if s.program_role == "thermostat" and s.enrollment is not None)
        self._request(nb, self.sce, devices=[taken.device], answers={"central_ac": True,
                                                                     "medical_baseline_ac": False},
                      when=when, who=f"{nb.key} ({nb.customer}) with {taken.key}'s thermostat")
        # 4. The battery aggregator sends the same customer's enrollment twice under a new transaction id.
        battery = next((s for s in self.result.sites if s.program_role == "battery" and s.enrollment), None)
        if battery is not None:
            self._request(battery, self.battery, devices=[battery.device], answers={"battery_interconnected": True},
                          when=when, who=f"{battery.key} ({battery.customer}), second request for its battery")
        self.result.sites.extend([dm, mb, nb])

    # -------------------------------------------------------------------------------------------------- season
    def _reference_load(self) -> dict[int, float]:
        """{UTC hour: kWh} summed over the real annual files (or the synthetic fleet)."""
        total: dict[int, float] = {}
        for site in self.result.sites:
            if site.program_role == "thermostat" and site.origin in (fl.REAL, fl.SYNTHETIC):
                for k, v in self.hourly[site.service_point.pk].items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def _plan_events(self, program, count: int, total: dict[int, float]) -> list[sim.HotDay]:
        from events.selectors import ProgramContext
        from programs.calendars import is_holiday

        ctx = ProgramContext.load(program)
        rule = ctx.rule_on(SEASON_FIRST)
        window = (rule.window_start.hour if rule.window_start else 12,
                  (rule.window_end.hour or 24) if rule.window_end else 20)
        hours = min(3, (rule.max_duration_minutes or 180) // 60, window[1] - window[0])
        season = next(s for s in ctx.seasons if s.start_date <= SEASON_FIRST <= s.end_date)

        def allowed(day: dt.date) -> bool:
            holiday = is_holiday(program.holiday_calendar, day)
            return day.weekday() < 5 and (rule.holidays_allowed or not holiday)

        return sim.hot_days(total, tz=program.time_zone, first=season.start_date, last=season.end_date,
                            window=window, hours=hours, count=count, allowed=allowed)

    def run_season(self) -> None:
        total = self._reference_load()
        plans = [(self.sce, d) for d in self._plan_events(self.sce, self.o.thermostat_events, total)]
        plans += [(self.battery, d) for d in self._plan_events(self.battery, self.o.battery_events, total)]
        plans += [(self.ptr, d) for d in self._plan_events(self.ptr, self.o.ptr_events, total)]
        actions: list[tuple[dt.datetime, int, int, Callable[[], None]]] = []
        seq = 0

        def at(when: dt.datetime, fn: Callable[[], None], *, last: bool = False) -> None:
            """Run ``fn`` at ``when`` (in registration order; ``last``: after everything else at that instant)."""
            nonlocal seq
            seq += 1
            actions.append((when, 1 if last else 0, seq, fn))

        at(BILLING_TICK_AT, self._billing_tick)
        thermostat_count = 0
        for program, hot in plans:
            tz = ZoneInfo(program.time_zone)
            start = dt.datetime.combine(hot.day, dt.time(hot.start_hour), tzinfo=tz).astimezone(UTC)
            created = dt.datetime.combine(hot.day - dt.timedelta(days=1), dt.time(16), tzinfo=tz).astimezone(UTC)
            # A peak-time rebate's notice is its dispatch: the day before (PGE), the others 2 h before the start.
            notify = created + dt.timedelta(minutes=5) if program == self.ptr else start - dt.timedelta(hours=2)
            state = _EventRun(program=program, hot=hot, start=start, end=start + dt.timedelta(hours=hot.hours),
                              notify=notify, created=created)
            if program == self.sce:
                thermostat_count += 1
                if thermostat_count == 2:
                    at(state.created - dt.timedelta(hours=2), lambda s=state: self._declare_unavailable(s))
            at(state.created, lambda s=state: self._schedule(s))
            at(state.created + dt.timedelta(minutes=1), lambda s=state: self._notify(s.created + dt.timedelta(
                minutes=1)))
            at(state.notify, lambda s=state: self._tick(s.notify))
            at(state.notify + dt.timedelta(minutes=1), lambda: self.ven.poll())
            at(state.notify, lambda s=state: self._notify(s.notify))
            at(state.notify + dt.timedelta(minutes=1), lambda s=state: self._notify(s.notify + dt.timedelta(
                minutes=1)))
            at(state.notify + dt.timedelta(minutes=20), lambda s=state: self._opt_outs_before(s))
            at(state.notify + dt.timedelta(minutes=21), lambda s=state: self._notify(s.notify + dt.timedelta(
                minutes=21)))
            at(state.start - dt.timedelta(hours=1), lambda s=state: self._notify(s.start - dt.timedelta(hours=1)))
            at(state.start, lambda s=state: self._tick(s.start))
            at(state.end, lambda s=state: self._finish(s))
            # The tick completes every event ending then (settling after-event ones): after all their meter feeds.
            at(state.end, lambda s=state: self._tick(s.end), last=True)
        for _, _, _, fn in sorted(actions, key=lambda a: (a[0], a[1], a[2])):
            fn()
        self.result.openadr3 = self.ven.stats.line()
        self._step(f"season simulated: {len(self.result.event_ids)} events")

    def _billing_tick(self) -> None:
        """June 1: the settlement tick settles May's billing period (the SCE enrollment bonus) and the analyst
        approves it."""
        from settlement.models import CustomerSettlement, SettlementBatch
        from settlement.services import customer_settlements_approve
        from settlement.tasks import tick

        result = tick.apply_async(kwargs={"now": BILLING_TICK_AT.isoformat()})
        if not self.eager:
            result.get(timeout=self.o.timeout)
        done = ("completed", "completed_with_errors")
        self.wait("the June 1 billing-period settlement batch", lambda: not SettlementBatch.objects.filter(
            kind="customer", period_start=dt.date(YEAR, 5, 1)).exclude(status__in=done).exists())
        customer_settlements_approve(
            settlements=CustomerSettlement.objects.filter(period_start=dt.date(YEAR, 5, 1), status="calculated"),
            now=BILLING_TICK_AT + dt.timedelta(hours=8), actor=self.users["demo-analyst"])
        self._step("June 1 settlement tick: May billing period (enrollment bonuses) calculated and approved")

    def _declare_unavailable(self, run: _EventRun) -> None:
        from events.services import unavailability_create

        site = next(s for s in self.result.sites if s.program_role == "thermostat" and s.enrollment and s.online
                    and s.origin != fl.REAL)
        tz = ZoneInfo(run.program.time_zone)
        day = run.hot.day
        unavailability_create(
            enrollment=site.enrollment, start=dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC),
            end=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(UTC),
            reason="away, house closed", now=run.created - dt.timedelta(hours=2), actor=self.users["demo-csr"])

    def _schedule(self, run: _EventRun) -> None:
        from events.models import Event
        from events.services import event_create, event_schedule

        actor = self.users["demo-program-admin"]
        short = {self.sce: "SCE", self.ptr: "PGE Peak Time"}.get(run.program, "ConnectedSolutions")
        event = event_create(program=run.program, name=f"{short} heat event {run.hot.day:%a %b %d}",
                             start=run.start, end=run.end, notification_at=run.notify, now=run.created, actor=actor)
        event_schedule(event=event, now=run.created, actor=actor)  # enqueues the reservation task
        self.wait(f"the reservation of event #{event.pk}",
                  lambda: Event.objects.filter(pk=event.pk, reserved_at__isnull=False).exists())
        run.event = event
        self.result.event_ids.append(event.pk)

    def _tick(self, when: dt.datetime) -> None:
        from events.services import events_tick

        events_tick(now=when, actor=demo_actor("events.tick"))  # the beat schedule, in simulated time

    def _responses(self, run: _EventRun) -> dict:
        if run.responses is None:
            from events.models import Participation

            keys = list(Participation.objects.filter(event=run.event).order_by("pk").values_list("pk", flat=True))
            rng = np.random.default_rng([self.o.seed, run.event.pk])
            run.responses = sim.plan_responses(keys, rng, duration_minutes=run.hot.hours * 60)
        return run.responses

    def _opt_outs_before(self, run: _EventRun) -> None:
        from events.models import Participation
        from events.services import participation_opt_out

        when = run.notify + dt.timedelta(minutes=20)
        if run.program == self.ptr:
            self._link_opt_outs(run, when)
            return
        for pk, resp in self._responses(run).items():
            if resp.kind == sim.OPT_OUT_BEFORE:
                participation_opt_out(participation=Participation.objects.get(pk=pk), channel="portal", at=when,
                                      now=when, actor=demo_actor("customer portal"),
                                      reason="too hot to pre-cool today")

    def _link_opt_outs(self, run: _EventRun, when: dt.datetime) -> None:
        """Peak-time rebate customers who will not take part click the opt-out link of their notice (the customer,
        by the signed link, through the events opt-out service)."""
        from cpm.base.capabilities import CustomerActor
        from cpm.notifications.models import Message
        from cpm.notifications.services import participation_opt_out_by_link
        from events.models import Participation

        for pk, resp in self._responses(run).items():
            if resp.kind not in (sim.OPT_OUT_BEFORE, sim.OPT_OUT_DURING):
                continue
            p = Participation.objects.select_related("enrollment__account").get(pk=pk)
            notice = Message.objects.filter(event=run.event, kind="event_notice", status="sent",
                                            customer_id=p.enrollment.account.customer_id).first()
            if notice is not None and p.status in ("reserved", "dispatched"):
                participation_opt_out_by_link(message=notice, now=when, actor=CustomerActor(
                    customer_id=notice.customer_id, via="opt-out link"))

    def _finish(self, run: _EventRun) -> None:
        """At the end: device overrides reported with their time, outcomes reported by the aggregators, the meter
        feed delivers the event-day readings (a new version); then (``run_season``) the tick completes the event
        (which hands an after-event program's event to settlement)."""
        from events.models import Participation
        from events.services import participation_opt_out, participation_outcomes_report
        from settlement.meterdata.loaders import meter_readings_load

        end = run.end
        responses = self._responses(run)
        for pk, resp in responses.items():
            if resp.kind == sim.OPT_OUT_DURING and run.program != self.ptr:  # PTR homes opted out by link
                at = run.start + dt.timedelta(minutes=resp.minutes_in)
                participation_opt_out(participation=Participation.objects.get(pk=pk), channel="device", at=at,
                                      now=end, actor=demo_actor("device override report"),
                                      reason="thermostat/app override")
        parts = list(Participation.objects.filter(event=run.event).select_related("device__aggregator"))
        by_agg: dict[int, list[dict]] = {}
        for p in parts:
            if p.status == "dispatched" and p.device_id:
                status = "non_responsive" if responses[p.pk].kind == sim.NON_RESPONSIVE else "participated"
                by_agg.setdefault(p.device.aggregator_id, []).append(
                    {"event": run.event.pk, "device": p.device.aggregator_device_id, "revision": run.event.revision,
                     "status": status})
        for agg_id, rows in by_agg.items():
            agg = next(a for a in self.aggregators.values() if a.pk == agg_id)
            if agg_id == self.ven.aggregator.pk:  # reported through OpenADR 3
                self.ven.report(run.event.pk, {r["device"]: r["status"] for r in rows}, start=run.start, end=end)
                continue
            participation_outcomes_report(aggregator=agg, outcomes=rows, now=end,
                                          actor=demo_actor(f"aggregator {agg.code}"))
        self._meter_feed(run, parts, responses, meter_readings_load)

    def _meter_feed(self, run: _EventRun, parts, responses, load) -> None:
        """Simulated readings of the event day for the participants (see ``cpm.demo.simulation``)."""
        from settlement.models import MeterDataLoad

        sps, devices, starts, kwh, channels = [], [], [], [], []
        capacity = {s.device.pk: s.capacity_kw for s in self.result.sites if s.device is not None}
        tz = ZoneInfo(run.program.time_zone)
        day_start = dt.datetime.combine(run.hot.day, dt.time(0), tzinfo=tz).astimezone(UTC)
        day_hours = [int(day_start.timestamp()) + 3600 * k for k in range(24)]
        for p in parts:
            resp = responses[p.pk]
            stop = None
            if resp.kind == sim.OPT_OUT_BEFORE:
                stop = run.start
            elif resp.kind == sim.OPT_OUT_DURING:
                stop = run.start + dt.timedelta(minutes=resp.minutes_in)
            elif resp.kind == sim.NON_RESPONSIVE:
                stop = run.start
            fractions = sim.hour_fractions(run.start, run.end, stop)
            if run.program in (self.sce, self.ptr):
                recorded = self.hourly.get(p.service_point_id, {})
                # A peak-time rebate home sheds load by hand (no device): 30 % of the hour, at most 1.5 kW.
                cap = capacity[p.device_id] if p.device_id else 1.5
                for hour, share in fractions.items():
                    if hour in recorded and share > 0:
                        sps.append(p.service_point_id)
                        devices.append(0)
                        starts.append(hour)
                        kwh.append(sim.thermostat_load(recorded[hour], capacity_kw=cap, fraction=share))
                        channels.append(0)
            else:  # battery telemetry for the whole local event day: zero outside the discharge
                for hour in day_hours:
                    sps.append(p.service_point_id)
                    devices.append(p.device_id)
                    starts.append(hour)
                    kwh.append(sim.battery_discharge(capacity_kw=capacity[p.device_id],
                                                     fraction=fractions.get(hour, 0.0)))
                    channels.append(1)
        if starts:
            load(now=run.end, source=MeterDataLoad.Source.API,
                 file_name=f"meter feed {run.program.code} {run.hot.day} (simulated response)",
                 arrays={"service_point": np.array(sps, dtype=np.int64), "device": np.array(devices, dtype=np.int64),
                         "start": np.array(starts, dtype=np.int64), "kwh": np.array(kwh, dtype=float),
                         "channel": np.array(channels, dtype=np.int8)}, actor=demo_actor("AMI head-end"))

    # ------------------------------------------------------------------------------------------------ settle
    def settle_season(self) -> None:
        from events.models import Event
        from settlement.models import CustomerSettlement, EventSettlement, SettlementBatch
        from settlement.services import (
            bill_credit_export_create,
            customer_settlements_approve,
            event_settlements_approve,
        )
        from settlement.tasks import settle_event, settle_season

        now = SEASON_END_AT
        analyst = self.users["demo-analyst"]
        done = ("completed", "completed_with_errors")
        events = list(Event.objects.filter(pk__in=self.result.event_ids, status="completed"))
        # Season-end programs' events are settled now (DEFERRED to the season settlement); after-event ones were
        # handed to settlement by the tick when they completed.
        for event in events:
            if not SettlementBatch.objects.filter(kind="event", event=event).exists():
                settle_event.apply_async(kwargs={"event_id": event.pk, "now": now.isoformat()})
        self.wait("the event settlement batches", lambda: SettlementBatch.objects.filter(
            kind="event", event__in=events, status__in=done).count() == len(events))
        self._step(f"event settlements: {EventSettlement.objects.count()} for {len(events)} events")
        approved = event_settlements_approve(
            settlements=EventSettlement.objects.filter(program__in=[self.sce, self.ptr], status="calculated")
            .order_by("pk"),
            now=now + dt.timedelta(hours=1), actor=analyst)
        seasons = []
        for program in (self.sce, self.battery, self.ev, self.ptr):
            season = program.seasons.get(start_date=SEASON_FIRST)
            seasons.append((program, season))
            settle_season.apply_async(kwargs={"program_id": program.pk, "season_id": season.pk,
                                              "now": (now + dt.timedelta(hours=2)).isoformat()})
        self.wait("the season settlement batches", lambda: SettlementBatch.objects.filter(
            kind="season", season__in=[s for _, s in seasons], status__in=done).count() == len(seasons))
        customer_settlements_approve(
            settlements=CustomerSettlement.objects.filter(status="calculated").order_by("pk"),
            now=now + dt.timedelta(hours=3), actor=analyst)
        export = bill_credit_export_create(now=now + dt.timedelta(hours=4), actor=analyst)
        self._notify(now + dt.timedelta(hours=5))  # event summaries and season statements
        self.result.export = export
        out_dir = self.o.out_dir or (Path(settings.VAR_DIR) / "demo")
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("bill-credits-*.csv"):
            old.unlink()
        if export is not None:
            self.result.export_path = out_dir / export.file_name
            self.result.export_path.write_text(export.content)
        self._step(f"season settled: {approved} event settlements of {self.sce.name} and {self.ptr.name} approved "
                   "by the analyst, "
                   "customer settlements approved, "
                   f"bill credits exported ({export.file_name if export else 'nothing to export'})")


@dataclass
class _EventRun:
    program: Any
    hot: sim.HotDay
    start: dt.datetime
    end: dt.datetime
    notify: dt.datetime
    created: dt.datetime
    event: Any = None
    responses: dict | None = None
