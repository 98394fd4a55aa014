"""Write the bad-file corpus deterministically: ``python -m tests.badfiles.generate`` (files are committed).

Each family is a directory ``corpus/<family>/`` with its files and a ``manifest.json``: a list of
``{"file", "kind" (CIS kind; "devices" for device lists), "errors": [[line, field or null, text], ...],
"form_error": text or null}``. Every expected error must appear as one reported line containing
``line <line>: `` + (``<field>: `` if a field) and ``text``. ``form_error`` is what the admin upload form says when
it refuses the file before the importer runs (Django refuses an empty upload itself).

The files assume the reference data of ``BASE_CIS`` (imported first by the tests) and an aggregator ``tesla``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).parent / "corpus"

# Reference data present before each bad file is tried (so files may name existing customers, service points).
BASE_CIS = (
    "premise_id,address_line1,city,service_point_id,cis_person_id,last_name,account_number,opened_on,agreement_id,"
    "start_date\n"
    "P-1,1 Oak St,Fresno,SP-1,PER-1,Lopez,ACC-1,2020-01-01,SA-1,2020-01-01\n"
    "P-2,2 Oak St,Fresno,SP-2,PER-2,Chen,ACC-2,2021-03-01,SA-2,2021-03-01\n"
)

PREMISES = "premise_id,address_line1,city,postal_code,latitude,longitude\n"
SERVICE_POINTS = "service_point_id,premise_id,meter_number,customer_class,rate_code\n"
CUSTOMERS = "cis_person_id,first_name,last_name,email,life_support\n"
ACCOUNTS = "account_number,cis_person_id,opened_on,closed_on\n"
AGREEMENTS = "agreement_id,account_number,service_point_id,start_date,end_date\n"
COMBINED = ("premise_id,address_line1,city,service_point_id,customer_class,cis_person_id,first_name,last_name,"
            "account_number,opened_on,agreement_id,start_date\n")
DEVICES = ("aggregator_device_id,device_type,capacity_kw,usable_energy_kwh,manufacturer,model,serial_number,"
           "service_point_id,installed_on,status\n")


def _filler(template: str, size: int) -> tuple[str, int]:
    """Good rows (numbered from 0) until the text passes ``size`` characters; returns (text, rows written)."""
    parts, total, n = [], 0, 0
    while total <= size:
        row = template.format(n=n)
        parts.append(row)
        total += len(row)
        n += 1
    return "".join(parts), n


def _premise_rows(n: int) -> str:
    return "".join(f"PX-{i},{i} Elm St,Fresno,93701,36.7,-119.8\n" for i in range(n))


def cis_files() -> list[tuple[str, str, bytes, list, str | None]]:
    """(file, kind, content, expected errors, admin form error)."""
    rng = random.Random(15)
    big, n_big = _filler("PX-{n},{n} Elm St,Fresno,93701,36.7,-119.8\n", 70_000)  # past the first 64 KiB
    line_after = n_big + 2
    files = [
        ("empty.csv", "premises", b"", [[1, None, "the file is empty."]], "The submitted file is empty."),
        ("blank_lines_only.csv", "customers", b"\n\n\r\n", [[1, None, "the file is empty."]], None),
        ("header_only_customers.csv", "customers", CUSTOMERS.encode(),
         [[1, None, "the file has a header but no data rows."]], None),
        ("missing_columns_accounts.csv", "accounts", b"account_number,opened_on\nACC-9,2020-01-01\n",
         [[1, None, "missing column(s): cis_person_id"]], None),
        ("missing_columns_combined.csv", "combined", b"premise_id,city\nP-9,Reno\n",
         [[1, None, "missing column(s): address_line1, service_point_id, cis_person_id, last_name, account_number,"
                    " opened_on, agreement_id, start_date"]], None),
        ("unknown_column_premises.csv", "premises", b"premise_id,address_line1,city,colour\nP-9,9 Elm,Reno,red\n",
         [[1, None, "unknown column(s): 'colour'"]], None),
        ("column_named_twice_customers.csv", "customers", b"cis_person_id,last_name,last_name\nPER-9,Diaz,Diaz\n",
         [[1, None, "column(s) named twice: last_name"]], None),
        ("latin1_after_64k_premises.csv", "premises",
         (PREMISES + big + "PZ-1,1 Caf\xe9 St,Fresno,93701,36.7,-119.8\n").encode("latin-1"),
         [[line_after, "address_line1", "not UTF-8 text"]], None),
        ("binary_byte_after_64k_service_points.csv", "service_points",
         SERVICE_POINTS.encode() + "".join(f"SPX-{i},P-1,M{i},residential,E-1\n" for i in range(3000)).encode()
         + b"SPX-X,P-1,M\x81\xfe,residential,E-1\n",
         [[3002, "meter_number", "not UTF-8 text"]], None),
        ("latin1_first_row_customers.csv", "customers", (CUSTOMERS + "PER-9,Jos\xe9,Diaz,,no\n").encode("latin-1"),
         [[2, "first_name", "not UTF-8 text"]], None),
        ("latin1_header_customers.csv", "customers", "cis_person_id,last_name,pr\xe9nom\nPER-9,Diaz,Jo\n".encode(
            "latin-1"), [[1, "header", "not UTF-8 text"]], None),
        ("utf16_customers.csv", "customers", (CUSTOMERS + "PER-9,Jo,Diaz,,no\n").encode("utf-16"),
         [[1, None, "the file is UTF-16 text; save it as UTF-8 CSV."]], None),
        ("binary_noise.csv", "combined", bytes(rng.randrange(256) for _ in range(4096)),
         [[1, "header", ""]], None),
        ("nul_in_value_customers.csv", "customers", (CUSTOMERS + "PER-9,Jo,Diaz,,no\nPER-10,A\x00na,Ruiz,,no\n")
         .encode(), [[3, "first_name", "contains a NUL character"]], None),
        ("field_over_csv_limit_customers.csv", "customers",
         (CUSTOMERS + "PER-9,Jo," + "D" * 140_000 + ",,no\n").encode(),
         [[2, "last_name", "140,000 characters; at most 100 allowed."]], None),
        ("field_over_max_length_premises.csv", "premises",
         (PREMISES + "P-9,9 Elm," + "R" * 101 + ",93701,,\n").encode(),
         [[2, "city", "101 characters; at most 100 allowed."]], None),
        ("key_over_max_length_accounts.csv", "accounts",
         (ACCOUNTS + "A" * 65 + ",PER-1,2020-01-01,\n").encode(),
         [[2, "account_number", "65 characters; at most 64 allowed."]], None),
        ("too_many_values_customers.csv", "customers", (CUSTOMERS + "PER-9,Jo,Diaz,,no\nPER-10,Al,Ruiz,,no,x\n")
         .encode(), [[3, None, "6 values but the header names 5 columns."]], None),
        ("year_0001_accounts.csv", "accounts", (ACCOUNTS + "ACC-9,PER-1,0001-01-01,\n").encode(),
         [[2, "opened_on", "0001-01-01 is outside the plausible years 1900..2100"]], None),
        ("year_9999_agreements.csv", "agreements", (AGREEMENTS + "SA-9,ACC-1,SP-1,2020-01-01,9999-12-31\n").encode(),
         [[2, "end_date", "9999-12-31 is outside the plausible years 1900..2100"]], None),
        ("not_a_date_accounts.csv", "accounts", (ACCOUNTS + "ACC-9,PER-1,01/02/2020,\n").encode(),
         [[2, "opened_on", "'01/02/2020' is not a date (YYYY-MM-DD)."]], None),
        ("year_1899_combined.csv", "combined",
         (COMBINED + "P-9,9 Elm,Reno,SP-9,residential,PER-9,Jo,Diaz,ACC-9,1899-12-31,SA-9,2020-01-01\n").encode(),
         [[2, "opened_on", "1899-12-31 is outside the plausible years"]], None),
        ("conflicting_premises.csv", "premises",
         (PREMISES + "P-9,9 Elm,Reno,89501,,\nP-8,8 Elm,Reno,89501,,\nP-9,9 Elm,Sparks,89501,,\n").encode(),
         [[2, "premise_id", "premise 'P-9' is given different values on line(s) 4 (city)."],
          [4, "premise_id", "premise 'P-9' is given different values on line(s) 2 (city)."]], None),
        ("conflicting_service_points.csv", "service_points",
         (SERVICE_POINTS + "SP-9,P-1,M9,residential,E-1\nSP-9,P-2,M9,residential,E-1\n").encode(),
         [[2, "service_point_id", "service point 'SP-9' is given different values on line(s) 3 (premise_id)."],
          [3, "service_point_id", "on line(s) 2 (premise_id)."]], None),
        ("conflicting_customers.csv", "customers",
         (CUSTOMERS + "PER-9,Jo,Diaz,,no\nPER-9,Jo,Diaz,,no\nPER-9,Jo,Diaz,,yes\n").encode(),
         [[2, "cis_person_id", "customer 'PER-9' is given different values on line(s) 4 (life_support)."],
          [3, "cis_person_id", "on line(s) 4 (life_support)."],
          [4, "cis_person_id", "on line(s) 2, 3 (life_support)."]], None),
        ("conflicting_accounts.csv", "accounts",
         (ACCOUNTS + "ACC-9,PER-1,2020-01-01,\nACC-9,PER-2,2020-01-01,\n").encode(),
         [[2, "account_number", "account 'ACC-9' is given different values on line(s) 3 (cis_person_id)."],
          [3, "account_number", "on line(s) 2 (cis_person_id)."]], None),
        ("conflicting_agreements.csv", "agreements",
         (AGREEMENTS + "SA-9,ACC-1,SP-1,2020-01-01,\nSA-9,ACC-1,SP-1,2020-02-01,\n").encode(),
         [[2, "agreement_id", "on line(s) 3 (start_date)."], [3, "agreement_id", "on line(s) 2 (start_date)."]],
         None),
        ("conflicting_customer_combined.csv", "combined",
         (COMBINED + "P-9,9 Elm,Reno,SP-9,residential,PER-9,Jo,Diaz,ACC-9,2020-01-01,SA-9,2020-01-01\n"
                     "P-9,9 Elm,Reno,SP-8,residential,PER-9,Jo,Dias,ACC-8,2020-01-01,SA-8,2020-01-01\n").encode(),
         [[2, "cis_person_id", "customer 'PER-9' is given different values on line(s) 3 (last_name)."],
          [3, "cis_person_id", "on line(s) 2 (last_name)."]], None),
        ("latitude_1e308_premises.csv", "premises", (PREMISES + "P-9,9 Elm,Reno,89501,1e308,-119\n").encode(),
         [[2, "latitude", "1e308 is not between -90 and 90 degrees."]], None),
        # An underscore between digits: Python's Decimal read 3_4 as 34 (PEP 515), a typo no extract means.
        ("latitude_digit_separator_premises.csv", "premises", (PREMISES + "P-9,9 Elm,Reno,89501,3_4,-119\n").encode(),
         [[2, "latitude", "'3_4' is not a number."]], None),
        ("longitude_nan_premises.csv", "premises", (PREMISES + "P-9,9 Elm,Reno,89501,39.5,NaN\n").encode(),
         [[2, "longitude", "NaN is not between -180 and 180 degrees."]], None),
        ("unknown_customer_accounts.csv", "accounts", (ACCOUNTS + "ACC-9,NOPE,2020-01-01,\n").encode(),
         [[2, "cis_person_id", "unknown customer 'NOPE'."]], None),
        ("bad_flag_customers.csv", "customers", (CUSTOMERS + "PER-9,Jo,Diaz,,maybe\n").encode(),
         [[2, "life_support", "'maybe' is not true/false."]], None),
        ("bad_class_service_points.csv", "service_points", (SERVICE_POINTS + "SP-9,P-1,M9,industrial-ish,E-1\n")
         .encode(), [[2, "customer_class", "is not a valid choice."]], None),
        ("quoted_newline_then_bad_date_accounts.csv", "accounts",
         (ACCOUNTS + '"ACC-9",PER-1,2020-01-01,\n"ACC-\n10",PER-1,2020-01-01,\nACC-11,PER-1,2020-13-01,\n')
         .encode(), [[5, "opened_on", "'2020-13-01' is not a date (YYYY-MM-DD)."]], None),
    ]
    return files


def device_files() -> list[tuple[str, str, bytes, list, str | None]]:
    rng = random.Random(1515)
    row = "d-{n},thermostat,1.5,,ecobee,E3,S{n},SP-1,2026-01-10,active\n"
    big, n_big = _filler(row, 70_000)
    return [
        ("capacity_1e308.csv", "devices", (DEVICES + "pw-1,battery,1e308,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw 1e308 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."]],
         None),
        ("capacity_nan.csv", "devices", (DEVICES + "pw-1,battery,NaN,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw must be a finite number, got 'NaN'."]], None),
        ("capacity_inf.csv", "devices", (DEVICES + "pw-1,battery,-Infinity,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw must be a finite number, got '-Infinity'."]], None),
        ("capacity_negative.csv", "devices", (DEVICES + "pw-1,battery,-5,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw must be zero or more, got '-5'."]], None),
        ("capacity_over_bound.csv", "devices", (DEVICES + "ev-1,ev_charger,7.2,,CP,H,C1,,,\n"
                                                "pw-1,battery,1000.001,,Tesla,PW2,TG1,,,\n").encode(),
         [[3, "capacity_kw", "capacity_kw 1000.001 is above the plausible maximum of 1,000 kW"]], None),
        ("capacity_digit_separator.csv", "devices", (DEVICES + "pw-1,battery,1_5,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw must be a number, got '1_5'."]], None),
        ("capacity_not_a_number.csv", "devices", (DEVICES + "pw-1,battery,5 kW,,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "capacity_kw", "capacity_kw must be a number, got '5 kW'."]], None),
        ("energy_1e308.csv", "devices", (DEVICES + "pw-1,battery,5,1e308,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "usable_energy_kwh", "usable_energy_kwh 1e308 is above the plausible maximum of 10,000 kWh"]], None),
        ("conflicting_duplicate.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG1,,,\n"
                                                  "pw-1,battery,5,13.5,Tesla,PW2,TG1,,,\n"
                                                  "pw-1,battery,5,14,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "aggregator_device_id", "device 'pw-1' is given different values on line(s) 4 (usable_energy_kwh)."],
          [4, "aggregator_device_id", "on line(s) 2, 3 (usable_energy_kwh)."]], None),
        ("installed_year_0001.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG1,SP-1,0001-01-01,\n")
         .encode(), [[2, "installed_on", "0001-01-01 is outside the plausible years 1900..2100"]], None),
        ("installed_year_9999.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG1,SP-1,9999-01-01,\n")
         .encode(), [[2, "installed_on", "9999-01-01 is outside the plausible years 1900..2100"]], None),
        ("latin1_after_64k.csv", "devices", (DEVICES + big + "d-x,thermostat,1.5,,Honeywell Fran\xe7ais,T6,S,,,\n")
         .encode("latin-1"), [[n_big + 2, "manufacturer", "not UTF-8 text"]], None),
        ("latin1_first_row.csv", "devices", (DEVICES + "d-x,thermostat,1.5,,Soci\xe9t\xe9,T6,S,,,\n").encode(
            "latin-1"), [[2, "manufacturer", "not UTF-8 text"]], None),
        ("nul_in_serial.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG\x001,,,\n").encode(),
         [[2, "serial_number", "contains a NUL character"]], None),
        ("id_over_max_length.csv", "devices", (DEVICES + "x" * 129 + ",battery,5,13.5,Tesla,PW2,TG1,,,\n").encode(),
         [[2, "aggregator_device_id", "129 characters; at most 128 allowed."]], None),
        ("field_over_csv_limit.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla," + "M" * 135_000
                                                 + ",TG1,,,\n").encode(),
         [[2, "model", "135,000 characters; at most 100 allowed."]], None),
        ("empty.csv", "devices", b"", [[1, None, "the file is empty."]], "The submitted file is empty."),
        ("header_only.csv", "devices", DEVICES.encode(), [[1, None, "the file has a header but no data rows."]],
         None),
        ("missing_columns.csv", "devices", b"aggregator_device_id,device_type\npw-1,battery\n",
         [[1, None, "missing column(s): capacity_kw"]], None),
        ("misspelt_column.csv", "devices", b"aggregator_device_id,device_type,capacity_kw,usable_enrgy_kwh\n"
                                           b"pw-1,battery,5,13.5\n",
         [[1, None, "unknown column(s): 'usable_enrgy_kwh'"]], None),
        ("utility_owned.csv", "devices", b"aggregator_device_id,device_type,capacity_kw,ownership\n"
                                         b"ut-1,water_heater,4.5,utility_owned\n",
         [[2, "ownership", "Utility-owned devices are out of scope"]], None),
        ("unknown_service_point.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG1,SP-404,2026-01-01,\n")
         .encode(), [[2, "service_point_id", "Unknown service point 'SP-404'."]], None),
        ("unknown_device_type.csv", "devices", (DEVICES + "pw-1,toaster,5,,,,,,,\n").encode(),
         [[2, "device_type", "Unknown device type 'toaster'"]], None),
        ("utf16.csv", "devices", (DEVICES + "pw-1,battery,5,13.5,Tesla,PW2,TG1,,,\n").encode("utf-16"),
         [[1, None, "the file is UTF-16 text; save it as UTF-8 CSV."]], None),
        ("binary_noise.csv", "devices", bytes(rng.randrange(256) for _ in range(4096)), [[1, "header", ""]], None),
    ]


def _write(family: str, files) -> None:
    folder = ROOT / family
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    manifest = []
    for name, kind, content, errors, form_error in files:
        (folder / name).write_bytes(content)
        manifest.append({"file": name, "kind": kind, "errors": errors, "form_error": form_error})
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=True) + "\n")


def main() -> None:
    _write("cis", cis_files())
    _write("devices", device_files())


if __name__ == "__main__":
    main()
