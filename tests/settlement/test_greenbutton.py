"""Green Button (ESPI) loads on the real sample files, read in place from GREENBUTTON_DIR.

Expected totals are computed independently with a plain regex pass over the XML (sum of IntervalReading values in
Wh) and compared with what was stored.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
from django.test import TestCase

from cpm.base.paths import green_button_dir
from settlement.meterdata import intervals
from settlement.meterdata.greenbutton import GreenButtonError, parse_green_button
from settlement.meterdata.loaders import meter_data_load_submit
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

GB_DIR = green_button_dir()
HAVE_SAMPLES = GB_DIR.is_dir() and any(GB_DIR.glob("*.xml"))  # a folder without files is no samples either
pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(not HAVE_SAMPLES, reason=f"Green Button samples (*.xml) not found in {GB_DIR}")]
NINE_DAYS = "TestGBDataHourlyNineDaysBinnedDaily.xml"
READING = re.compile(r"<(?:espi:)?IntervalReading>.*?<(?:espi:)?value>(-?\d+)</(?:espi:)?value>", re.S)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def expected_wh(path: Path) -> tuple[int, int]:
    values = [int(v) for v in READING.findall(path.read_text())]
    return sum(values), len(values)


def load_file(name: str, sp, now, content: bytes | None = None) -> MeterDataLoad:
    content = content if content is not None else (GB_DIR / name).read_bytes()
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="green_button", content=content, now=now, file_name=name,
                                      service_point_id=sp.service_point_id, actor=TEST_ACTOR)
    load.refresh_from_db()
    return load


def stored_wh(sp) -> float:
    total = 0.0
    for blob in IntervalDay.objects.filter(service_point=sp, is_current=True).values_list("values", flat=True):
        total += np.nansum(intervals.decode(blob))
    return total * 1000


@pytest.mark.parametrize("name", sorted(p.name for p in GB_DIR.glob("*.xml")) if HAVE_SAMPLES else [])
def test_sample_file_totals(name, now):
    sp = ServicePointFactory()
    wh, count = expected_wh(GB_DIR / name)
    load = load_file(name, sp, now)
    assert load.status == MeterDataLoad.Status.COMPLETED, load.errors
    assert load.readings_new == count and load.readings_rejected == 0
    assert stored_wh(sp) == pytest.approx(wh, rel=1e-9)


def test_nine_day_file_first_reading_and_reload(now):
    sp = ServicePointFactory()
    load = load_file(NINE_DAYS, sp, now)
    assert load.summary == "216 new, 0 unchanged, 0 corrected, 0 rejected"
    first = IntervalDay.objects.filter(service_point=sp).order_by("day").first()
    assert first.day == dt.date(2014, 1, 1) and first.interval_minutes == 60 and first.channel == "delivered"
    values = intervals.decode(first.values)
    assert np.isnan(values[:5]).all()  # nothing before 05:00Z: gaps, not zeros
    assert values[5] == pytest.approx(0.273)  # 2014-01-01 05:00Z, 273 Wh
    again = load_file(NINE_DAYS, sp, now)
    assert again.summary == "0 new, 216 unchanged, 0 corrected, 0 rejected"


def test_parser_reads_reading_type_and_local_time():
    data = parse_green_button((GB_DIR / "espi_15min_test_usage_data.xml").read_bytes())
    assert data.tz_offset_s == -18000
    (up,) = data.usage_points
    assert up.title == "Front Electric Meter" and set(up.minutes.tolist()) == {15}


def test_unknown_flow_direction_fails_the_load(now):
    sp = ServicePointFactory()
    content = (GB_DIR / NINE_DAYS).read_text().replace("<flowDirection>1</flowDirection>",
                                                       "<flowDirection>7</flowDirection>")
    with pytest.raises(GreenButtonError, match="unknown flowDirection '7'"):
        parse_green_button(content)
    load = load_file(NINE_DAYS, sp, now, content=content.encode())
    assert load.status == MeterDataLoad.Status.FAILED
    assert "unknown flowDirection '7'" in load.errors[0]["message"]
    assert not IntervalDay.objects.exists()


def test_reverse_flow_and_power_of_ten(now):
    sp = ServicePointFactory()
    content = (GB_DIR / NINE_DAYS).read_text().replace("<flowDirection>1</flowDirection>",
                                                       "<flowDirection>19</flowDirection>", 1)
    content = content.replace("<powerOfTenMultiplier>0</powerOfTenMultiplier>",
                              "<powerOfTenMultiplier>-3</powerOfTenMultiplier>", 1)
    load = load_file(NINE_DAYS, sp, now, content=content.encode())
    assert load.status == MeterDataLoad.Status.COMPLETED
    row = IntervalDay.objects.filter(service_point=sp, channel="received").order_by("day").first()
    assert intervals.decode(row.values)[5] == pytest.approx(0.000273)  # 273 x 10^-3 Wh


def test_the_default_green_button_folder_is_shared_beside_the_repository_root(monkeypatch, tmp_path):
    """Without ``GREENBUTTON_DIR``: ``../shared/data/greenbutton`` beside the repository root, as the README says
    (the message of a missing folder named one inside the clone)."""
    from pathlib import Path

    from cpm.base import paths

    # The repository root (where manage.py is), not the ``cpm`` package inside it, whatever the clone's folder name.
    assert paths.REPO == Path(paths.__file__).resolve().parents[2]
    assert (paths.REPO / "manage.py").is_file() and (paths.REPO / "cpm" / "base" / "paths.py").is_file()
    monkeypatch.delenv("GREENBUTTON_DIR", raising=False)
    monkeypatch.setattr(paths, "REPO", tmp_path / "clone")
    assert green_button_dir() == tmp_path / "shared" / "data" / "greenbutton"  # where it is looked for, missing
    (tmp_path / "shared" / "data" / "greenbutton").mkdir(parents=True)
    assert green_button_dir().is_dir()


# ------------------------------------------------------------------------ files holding more than one reading type
ESPI_BASE = "https://services.greenbuttondata.org/DataCustodian/espi/1_1/resource"
FIRST_HOUR = 1388552400  # 2014-01-01 05:00Z, the nine-day file's first reading (273 Wh forward)


def _meter_reading(usage_point: str, number: str, rt: str, reading_type: str, readings: list[tuple[int, int, int]]
                   ) -> str:
    """Entries of one MeterReading of ``usage_point`` with its ReadingType and one IntervalBlock of
    ``(start, duration, value)`` readings."""
    body = "".join(f"<IntervalReading><timePeriod><duration>{d}</duration><start>{s}</start></timePeriod>"
                   f"<value>{v}</value></IntervalReading>" for s, d, v in readings)
    mr = f"{ESPI_BASE}/RetailCustomer/2/UsagePoint/{usage_point}/MeterReading/{number}"
    return (f'<entry><link rel="self" href="{mr}"/><link rel="up" href="{mr.rsplit("/", 1)[0]}"/>'
            f'<link rel="related" href="{ESPI_BASE}/ReadingType/{rt}"/>'
            f'<content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>'
            f'<entry><link rel="self" href="{ESPI_BASE}/ReadingType/{rt}"/>'
            f'<content><ReadingType xmlns="http://naesb.org/espi">{reading_type}</ReadingType></content></entry>'
            f'<entry><link rel="self" href="{mr}/IntervalBlock/1"/><link rel="up" href="{mr}/IntervalBlock"/>'
            f'<content><IntervalBlock xmlns="http://naesb.org/espi">{body}</IntervalBlock></content></entry>')


def _hours(values: list[int]) -> list[tuple[int, int, int]]:
    return [(FIRST_HOUR + 3600 * i, 3600, v) for i, v in enumerate(values)]


def _energy_type(flow: int) -> str:
    return (f"<flowDirection>{flow}</flowDirection><intervalLength>3600</intervalLength><uom>72</uom>"
            "<powerOfTenMultiplier>0</powerOfTenMultiplier>")


def test_a_net_reading_beside_forward_and_reverse_does_not_wipe_out_the_delivered_hours(now):
    """A solar customer's Green Button file gives the forward (flowDirection 1), reverse (19) and net (4) readings
    of one meter. Net is forward minus reverse, not a second delivered reading: it was stored on the delivered
    channel too, so every hour with export held two different delivered values and both were rejected as
    conflicting duplicates (the forward kWh lost). The forward and reverse readings are what is stored; a net
    reading that disagrees with them is a row error naming it."""
    sp = ServicePointFactory()
    extra = (_meter_reading("2", "02", "20", _energy_type(19), _hours([100, 100, 0, 50]))
             # hours 0-2: 273 - reverse; hour 3 disagrees: 273 - 50 = 223, not 200
             + _meter_reading("2", "03", "21", _energy_type(4), _hours([173, 173, 273, 200])))
    content = (GB_DIR / NINE_DAYS).read_text().replace("</feed>", extra + "</feed>")
    _wh, count = expected_wh(GB_DIR / NINE_DAYS)
    load = load_file(NINE_DAYS, sp, now, content=content.encode())
    assert load.readings_new == count + 4  # every forward hour and the 4 reverse hours
    assert load.readings_rejected == 1
    assert load.errors == [{"row": count + 8, "field": "value", "message":
                            "net reading of 200 Wh disagrees with forward 273 Wh - reverse 50 Wh = 223 Wh at "
                            "2014-01-01T08:00:00Z; the forward and reverse readings are loaded "
                            f"(IntervalReading {count + 8}, in IntervalBlock 11)"}]
    day = IntervalDay.objects.get(service_point=sp, channel="delivered", day=dt.date(2014, 1, 1))
    assert list(intervals.decode(day.values)[5:9]) == [0.273] * 4
    received = IntervalDay.objects.get(service_point=sp, channel="received", day=dt.date(2014, 1, 1))
    assert list(intervals.decode(received.values)[5:9]) == [0.1, 0.1, 0.0, 0.05]
    assert stored_wh(sp) == pytest.approx(_wh + 250)


def test_a_net_only_file_is_still_stored_on_the_delivered_channel_signed(now):
    sp = ServicePointFactory()
    content = (GB_DIR / NINE_DAYS).read_text().replace("<flowDirection>1</flowDirection>",
                                                       "<flowDirection>4</flowDirection>")
    content = content.replace("<value>273</value>", "<value>-273</value>", 1)
    load = load_file(NINE_DAYS, sp, now, content=content.encode())
    assert load.status == MeterDataLoad.Status.COMPLETED, load.errors
    first = IntervalDay.objects.get(service_point=sp, channel="delivered", day=dt.date(2014, 1, 1))
    assert intervals.decode(first.values)[5] == pytest.approx(-0.273)


def _gas_usage_point() -> str:
    up = f"{ESPI_BASE}/RetailCustomer/2/UsagePoint/3"
    return (f'<entry><link rel="self" href="{up}"/><link rel="up" href="{up.rsplit("/", 1)[0]}"/>'
            '<title>Gas Meter</title><content><UsagePoint xmlns="http://naesb.org/espi"><ServiceCategory>'
            '<kind>1</kind></ServiceCategory></UsagePoint></content></entry>'
            + _meter_reading("3", "01", "30", "<flowDirection>1</flowDirection><intervalLength>86400"
                             "</intervalLength><uom>169</uom><powerOfTenMultiplier>-3</powerOfTenMultiplier>",
                             [(FIRST_HOUR, 86400, 2500)]))


def test_a_file_with_a_gas_usage_point_loads_its_electricity(now):
    """A customer's Download My Data file holds the electric meter and the gas meter (ServiceCategory 1, therms,
    uom 169). The whole file failed ('unsupported uom 169'), even with usage_point naming the electric meter: the
    electric usage point loads, the gas one (not electricity interval energy) is left out."""
    content = (GB_DIR / NINE_DAYS).read_text().replace("</feed>", _gas_usage_point() + "</feed>").encode()
    wh, count = expected_wh(GB_DIR / NINE_DAYS)
    for usage_point in (None, "Green Button Sample Data File"):
        sp = ServicePointFactory()
        with TestCase.captureOnCommitCallbacks(execute=True):
            load = meter_data_load_submit(source="green_button", content=content, now=now, file_name="both.xml",
                                          service_point_id=sp.service_point_id, usage_point=usage_point,
                                          actor=TEST_ACTOR)
        load.refresh_from_db()
        assert load.status == MeterDataLoad.Status.COMPLETED, load.errors
        assert load.readings_new == count and stored_wh(sp) == pytest.approx(wh)
    # Asked for the gas meter: refused in words, nothing stored.
    sp = ServicePointFactory()
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="green_button", content=content, now=now, file_name="both.xml",
                                      service_point_id=sp.service_point_id, usage_point="Gas Meter",
                                      actor=TEST_ACTOR)
    load.refresh_from_db()
    assert load.status == MeterDataLoad.Status.FAILED
    assert load.errors[0]["message"] == (
        f"no interval readings found for usage point 'Gas Meter': ReadingType {ESPI_BASE}/ReadingType/30: "
        "unsupported uom 169 (only 72 = Wh energy readings)")
    assert not IntervalDay.objects.filter(service_point=sp).exists()
