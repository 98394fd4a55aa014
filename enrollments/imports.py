"""Import of CIS (customer information system) extracts: all or nothing, with row numbers, idempotent.

``import_cis --kind KIND FILE``. One CSV format per entity, or one combined format (one row per service agreement,
repeating its premise, service point, customer and account). Columns (required marked *):

- ``premises``: premise_id*, address_line1*, city*, address_line2, state, postal_code, service_territory,
  substation, feeder, transformer, latitude, longitude (degrees; more than 6 decimals are rounded to 6)
- ``service_points``: service_point_id*, premise_id* (must exist or be in the same file), meter_number,
  customer_class (residential | small_commercial | commercial_industrial; default residential), rate_code,
  is_active (true/false, default true), net_metered (default false)
- ``customers``: cis_person_id*, last_name*, first_name, email, phone, life_support (true/false, default false)
- ``accounts``: account_number*, cis_person_id*, opened_on* (YYYY-MM-DD), closed_on (a date closes the account
  through ``account_close``: its enrollments end that day)
- ``agreements``: agreement_id*, account_number*, service_point_id*, start_date*, end_date (an end date with no
  other open agreement of the account at that point is a move-out: its enrollments there end that day). A service
  point has one agreement at a time (periods ``[start_date, end_date)`` may not overlap; the refusal names the
  other agreement); the rows are applied ending agreements first, so a file that ends one agreement and starts the
  next is imported whatever the order of its rows.
- ``combined``: every column above (agreement_id, start_date and end_date for the agreement).

Entities are upserted by their CIS key: a re-import of the same file reports every entity ``unchanged`` and writes
nothing. Any error rolls everything back and lists each ``line N: field: message``. The formats are strict: a
column not listed for the kind is a file-level error. What else is refused (encodings, NUL bytes, over-long values,
implausible dates and coordinates, one key given different values on two lines, empty and header-only files) is
described in ``devices.imports``; two identical imports at once end as if run one after the other.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from cpm.base.capabilities import Cap, use_case
from cpm.base.numbers import to_decimal
from devices.imports import Format, ImportReport, model_columns, parse_bool, parse_date, require, run_import
from devices.models import Premise, ServicePoint
from devices.services import PREMISE_FIELDS, premise_upsert, service_point_upsert

from . import services
from .models import Account, Customer, ServiceAgreement

PREMISE_REQUIRED = ("premise_id", "address_line1", "city")
SERVICE_POINT_REQUIRED = ("service_point_id", "premise_id")
CUSTOMER_REQUIRED = ("cis_person_id", "last_name")
ACCOUNT_REQUIRED = ("account_number", "cis_person_id", "opened_on")
AGREEMENT_REQUIRED = ("agreement_id", "account_number", "service_point_id", "start_date")

KINDS = ("premises", "service_points", "customers", "accounts", "agreements", "combined")

_PREMISE = model_columns(Premise, ("premise_id", *PREMISE_FIELDS))
_SERVICE_POINT = model_columns(ServicePoint, ("service_point_id", "meter_number", "customer_class", "rate_code",
                                              "is_active", "net_metered"), premise_id=_PREMISE["premise_id"])
_CUSTOMER = model_columns(Customer, ("cis_person_id", "first_name", "last_name", "email", "phone", "life_support"))
_ACCOUNT = model_columns(Account, ("account_number", "opened_on", "closed_on"),
                         cis_person_id=_CUSTOMER["cis_person_id"])
_AGREEMENT = model_columns(ServiceAgreement, ("agreement_id", "start_date", "end_date"),
                           account_number=_ACCOUNT["account_number"],
                           service_point_id=_SERVICE_POINT["service_point_id"])


def _key(entity: str, columns: dict[str, int | None]) -> tuple[str, str, list[str]]:
    key, *rest = columns
    return entity, key, rest


FORMATS = {
    "premises": Format(_PREMISE, PREMISE_REQUIRED, [_key("premise", _PREMISE)]),
    "service_points": Format(_SERVICE_POINT, SERVICE_POINT_REQUIRED, [_key("service point", _SERVICE_POINT)]),
    "customers": Format(_CUSTOMER, CUSTOMER_REQUIRED, [_key("customer", _CUSTOMER)]),
    "accounts": Format(_ACCOUNT, ACCOUNT_REQUIRED, [_key("account", _ACCOUNT)]),
    "agreements": Format(_AGREEMENT, AGREEMENT_REQUIRED, [_key("agreement", _AGREEMENT)]),
    "combined": Format(
        {**_PREMISE, **_SERVICE_POINT, **_CUSTOMER, **_ACCOUNT, **_AGREEMENT},
        tuple(dict.fromkeys(PREMISE_REQUIRED + SERVICE_POINT_REQUIRED + CUSTOMER_REQUIRED + ACCOUNT_REQUIRED
                            + AGREEMENT_REQUIRED)),
        [_key("premise", _PREMISE), _key("service point", _SERVICE_POINT), _key("customer", _CUSTOMER),
         _key("account", _ACCOUNT), _key("agreement", _AGREEMENT)]),
}
COORDINATE_BOUNDS = {"latitude": 90, "longitude": 180}
COORDINATE_STEP = Decimal("0.000001")  # Premise.latitude / longitude: numeric(9, 6)


def _coordinate(value: str, column: str) -> Decimal | None:
    """A latitude (-90..90) or longitude (-180..180) in degrees, rounded to 6 decimals, or None."""
    if not value:
        return None
    try:
        number = to_decimal(value)
    except (InvalidOperation, ValueError):
        raise ValidationError({column: [f"{value[:40]!r} is not a number."]}) from None
    bound = COORDINATE_BOUNDS[column]
    if not number.is_finite() or abs(number) > bound:
        raise ValidationError({column: [f"{value[:40]} is not between -{bound} and {bound} degrees."]})
    # The columns keep 6 decimals (about 0.1 m): a GIS export's 7 or more (or a trailing zero) is the same position,
    # rounded, so that the file imports and its re-import compares equal to what was stored.
    return number.quantize(COORDINATE_STEP, rounding=ROUND_HALF_UP)


def _premise(row, report, now, actor) -> Premise:
    require(row, *PREMISE_REQUIRED)
    values = {k: row.get(k, "") for k in PREMISE_FIELDS if k not in ("latitude", "longitude")}
    for k in ("latitude", "longitude"):
        values[k] = _coordinate(row.get(k, ""), k)
    premise, outcome = premise_upsert(premise_id=row["premise_id"], values=values, now=now, actor=actor)
    report.count("premises", premise.premise_id, outcome)
    return premise


def _service_point(row, report, now, actor) -> ServicePoint:
    require(row, *SERVICE_POINT_REQUIRED)
    premise = Premise.objects.filter(premise_id=row["premise_id"]).first()
    if premise is None:
        raise LookupError(f"premise_id: unknown premise {row['premise_id']!r}.")
    values = {"meter_number": row.get("meter_number", ""),
              "customer_class": row.get("customer_class") or "residential",
              "rate_code": row.get("rate_code", ""),
              "is_active": parse_bool(row.get("is_active", ""), "is_active", default=True),
              "net_metered": parse_bool(row.get("net_metered", ""), "net_metered")}
    sp, outcome = service_point_upsert(service_point_id=row["service_point_id"], premise=premise, values=values,
                                       now=now, actor=actor)
    report.count("service_points", sp.service_point_id, outcome)
    return sp


def _customer(row, report, now, actor) -> Customer:
    require(row, *CUSTOMER_REQUIRED)
    values = {"first_name": row.get("first_name", ""), "last_name": row["last_name"], "email": row.get("email", ""),
              "phone": row.get("phone", ""), "life_support": parse_bool(row.get("life_support", ""), "life_support")}
    customer, outcome = services.customer_upsert(cis_person_id=row["cis_person_id"], values=values, now=now,
                                                 actor=actor)
    report.count("customers", customer.cis_person_id, outcome)
    return customer


def _account(row, report, now, actor) -> Account:
    require(row, *ACCOUNT_REQUIRED)
    opened_on, closed_on = parse_date(row["opened_on"], "opened_on"), parse_date(row.get("closed_on", ""), "closed_on")
    customer = Customer.objects.filter(cis_person_id=row["cis_person_id"]).first()
    if customer is None:
        raise LookupError(f"cis_person_id: unknown customer {row['cis_person_id']!r}.")
    account, outcome = services.account_upsert(
        account_number=row["account_number"], customer=customer, opened_on=opened_on, closed_on=closed_on, now=now,
        actor=actor)
    report.count("accounts", account.account_number, outcome)
    return account


def _agreement(row, report, now, actor) -> None:
    require(row, *AGREEMENT_REQUIRED)
    start_date, end_date = parse_date(row["start_date"], "start_date"), parse_date(row.get("end_date", ""), "end_date")
    account = Account.objects.filter(account_number=row["account_number"]).first()
    if account is None:
        raise LookupError(f"account_number: unknown account {row['account_number']!r}.")
    sp = ServicePoint.objects.filter(service_point_id=row["service_point_id"]).first()
    if sp is None:
        raise LookupError(f"service_point_id: unknown service point {row['service_point_id']!r}.")
    agreement, outcome = services.service_agreement_upsert(
        agreement_id=row["agreement_id"], account=account, service_point=sp,
        start_date=start_date, end_date=end_date, now=now, actor=actor, end_enrollments=False)
    report.count("agreements", agreement.agreement_id, outcome)
    if end_date is not None:
        report.pending.setdefault((account.pk, sp.pk), (account, sp))


@use_case("customers.import", Cap.MAINTAIN_CUSTOMERS)
def import_cis(source, *, kind: str, now: dt.datetime, actor: Any, name: str = "") -> ImportReport:
    """Import a CIS extract of ``kind`` (see the module docstring for columns). Raises ``ImportFailed`` listing
    every row error (nothing written) or returns the counts per entity (new / updated / unchanged)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {', '.join(KINDS)}.")

    handlers = {
        "premises": [_premise], "service_points": [_service_point], "customers": [_customer],
        "accounts": [_account], "agreements": [_agreement],
        "combined": [_premise, _service_point, _customer, _account, _agreement],
    }[kind]

    def handle(row, report):
        for handler in handlers:
            handler(row, report, now, actor)

    def finish(report):
        # Move-outs once every agreement is in (a rollover's new agreement may come on a later row).
        for account, sp in report.pending.values():
            services.service_agreement_move_out(account=account, service_point=sp, now=now, actor=actor)

    return run_import(source, fmt=FORMATS[kind], handle=handle, name=name, finish=finish,
                      order=_agreement_order if kind in ("agreements", "combined") else None)


def _agreement_order(row: dict[str, str]) -> tuple[int, str]:
    """Agreements that end first, by end date, then the open-ended ones: one occupant at a time holds at every step
    when the file holds at its end, whatever the order CIS wrote the rows in (a new occupant's or a rate change's
    agreement before the end of the one it follows)."""
    end = row.get("end_date", "")
    return (0, end) if end else (1, "")
