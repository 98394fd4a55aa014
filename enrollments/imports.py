"""Import of CIS (customer information system) extracts: all or nothing, with row numbers, idempotent.

``import_cis --kind KIND FILE``. One CSV format per entity, or one combined format (one row per service agreement,
repeating its premise, service point, customer and account). Columns (required marked *):

- ``premises``: premise_id*, address_line1*, city*, address_line2, state, postal_code, service_territory,
  substation, feeder, transformer, latitude, longitude
- ``service_points``: service_point_id*, premise_id* (must exist or be in the same file), meter_number,
  customer_class (residential | small_commercial | commercial_industrial; default residential), rate_code,
  is_active (true/false, default true), net_metered (default false)
- ``customers``: cis_person_id*, last_name*, first_name, email, phone, life_support (true/false, default false)
- ``accounts``: account_number*, cis_person_id*, opened_on* (YYYY-MM-DD), closed_on (a date closes the account
  through ``account_close``: its enrollments end that day)
- ``agreements``: agreement_id*, account_number*, service_point_id*, start_date*, end_date
- ``combined``: every column above (agreement_id, start_date and end_date for the agreement).

Entities are upserted by their CIS key: a re-import of the same file reports every entity ``unchanged`` and writes
nothing. Any row error rolls everything back and lists each ``row N: field: message``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cpm.base.capabilities import Cap, use_case
from devices.imports import ImportReport, parse_bool, parse_date, require, run_import
from devices.models import Premise, ServicePoint
from devices.services import PREMISE_FIELDS, premise_upsert, service_point_upsert

from . import services
from .models import Account, Customer

PREMISE_REQUIRED = ("premise_id", "address_line1", "city")
SERVICE_POINT_REQUIRED = ("service_point_id", "premise_id")
CUSTOMER_REQUIRED = ("cis_person_id", "last_name")
ACCOUNT_REQUIRED = ("account_number", "cis_person_id", "opened_on")
AGREEMENT_REQUIRED = ("agreement_id", "account_number", "service_point_id", "start_date")

KINDS = ("premises", "service_points", "customers", "accounts", "agreements", "combined")


def _premise(row, report, now, actor) -> Premise:
    require(row, *PREMISE_REQUIRED)
    values = {k: row.get(k, "") for k in PREMISE_FIELDS if k not in ("latitude", "longitude")}
    for k in ("latitude", "longitude"):
        values[k] = row.get(k) or None
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
    customer = Customer.objects.filter(cis_person_id=row["cis_person_id"]).first()
    if customer is None:
        raise LookupError(f"cis_person_id: unknown customer {row['cis_person_id']!r}.")
    account, outcome = services.account_upsert(
        account_number=row["account_number"], customer=customer, opened_on=parse_date(row["opened_on"], "opened_on"),
        closed_on=parse_date(row.get("closed_on", ""), "closed_on"), now=now, actor=actor)
    report.count("accounts", account.account_number, outcome)
    return account


def _agreement(row, report, now, actor) -> None:
    require(row, *AGREEMENT_REQUIRED)
    account = Account.objects.filter(account_number=row["account_number"]).first()
    if account is None:
        raise LookupError(f"account_number: unknown account {row['account_number']!r}.")
    sp = ServicePoint.objects.filter(service_point_id=row["service_point_id"]).first()
    if sp is None:
        raise LookupError(f"service_point_id: unknown service point {row['service_point_id']!r}.")
    agreement, outcome = services.service_agreement_upsert(
        agreement_id=row["agreement_id"], account=account, service_point=sp,
        start_date=parse_date(row["start_date"], "start_date"), end_date=parse_date(row.get("end_date", ""),
                                                                                    "end_date"), now=now, actor=actor)
    report.count("agreements", agreement.agreement_id, outcome)


@use_case("customers.import", Cap.MAINTAIN_CUSTOMERS)
def import_cis(source, *, kind: str, now: dt.datetime, actor: Any) -> ImportReport:
    """Import a CIS extract of ``kind`` (see the module docstring for columns). Raises ``ImportFailed`` listing
    every row error (nothing written) or returns the counts per entity (new / updated / unchanged)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {', '.join(KINDS)}.")

    steps = {
        "premises": (PREMISE_REQUIRED, [_premise]),
        "service_points": (SERVICE_POINT_REQUIRED, [_service_point]),
        "customers": (CUSTOMER_REQUIRED, [_customer]),
        "accounts": (ACCOUNT_REQUIRED, [_account]),
        "agreements": (AGREEMENT_REQUIRED, [_agreement]),
        "combined": (tuple(dict.fromkeys(PREMISE_REQUIRED + SERVICE_POINT_REQUIRED + CUSTOMER_REQUIRED
                                         + ACCOUNT_REQUIRED + AGREEMENT_REQUIRED)),
                     [_premise, _service_point, _customer, _account, _agreement]),
    }
    required, handlers = steps[kind]

    def handle(row, report):
        for handler in handlers:
            handler(row, report, now, actor)

    return run_import(source, required=required, handle=handle)
