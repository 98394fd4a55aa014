"""Program set-up a non-developer can do (issue 17, point 3): eligibility lists as ticked values listing the allowed
codes (never JSON), sections, a safe default for life support, refusals in words."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from programs.choices import CustomerClass, DeviceType
from programs.models import Program
from tests.factories.devices import ServicePointFactory
from tests.factories.programs import ProgramFactory

from .test_admin import _program_post

pytestmark = pytest.mark.django_db


def _option_values(html: str, name: str) -> set[str]:
    return {m.group(1) for m in re.finditer(rf'<input type="checkbox" name="{name}" value="([^"]*)"', html)}


def test_add_form_lists_the_allowed_values_of_every_eligibility_list(admin_client):
    ServicePointFactory(rate_code="TOU-D", premise__service_territory="SCE", premise__substation="SUB-7",
                        premise__feeder="F-12")
    ServicePointFactory(rate_code="D-CARE", premise__service_territory="NGRID-MA", premise__substation="",
                        premise__feeder="")
    html = admin_client.get(reverse("admin:programs_program_add")).content.decode()
    assert _option_values(html, "eligible_device_types") == set(DeviceType.values)
    assert _option_values(html, "eligible_customer_classes") == set(CustomerClass.values)
    assert _option_values(html, "eligible_rate_codes") == {"TOU-D", "D-CARE"}
    assert _option_values(html, "eligible_territories") == {"SCE", "NGRID-MA"}
    assert _option_values(html, "eligible_substations") == {"SUB-7"}
    assert _option_values(html, "eligible_feeders") == {"F-12"}
    assert "Enter a valid JSON" not in html
    assert '<textarea name="eligible_' not in html
    # Sections: named fieldsets, the rarely changed ones folded (<details>, no script).
    for heading in ("Enrollment", "Who may enroll", "Where it is offered", "Events", "Settlement"):
        assert heading in html
    assert "<details" in html
    # Life support excluded unless unticked.
    assert re.search(r'<input type="checkbox" name="excludes_life_support"[^>]*checked', html)


def test_change_form_keeps_a_programs_own_codes_ticked(admin_client):
    program = ProgramFactory(status="draft", eligible_territories=["PGE-OR"], eligible_rate_codes=["R-1"])
    html = admin_client.get(reverse("admin:programs_program_change", args=[program.pk])).content.decode()
    assert re.search(r'name="eligible_territories" value="PGE-OR"[^>]*checked', html)
    assert re.search(r'name="eligible_rate_codes" value="R-1"[^>]*checked', html)


def test_ticked_values_are_saved_as_lists_and_unknown_values_refused_in_words(admin_client):
    ServicePointFactory(rate_code="TOU-D", premise__service_territory="SCE")
    url = reverse("admin:programs_program_add")
    response = admin_client.post(url, _program_post(eligible_device_types=["toaster"]))
    assert response.status_code == 200
    assert "toaster is not one of the values listed here." in response.content.decode()
    response = admin_client.post(url, _program_post(
        eligible_device_types=["thermostat", "battery"], eligible_rate_codes=["TOU-D"],
        eligible_territories=["SCE"], excludes_life_support="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    program = Program.objects.get(code="admin-made")
    assert program.eligible_device_types == ["thermostat", "battery"]
    assert (program.eligible_rate_codes, program.eligible_territories) == (["TOU-D"], ["SCE"])
    assert program.eligible_substations == [] and program.excludes_life_support is True


def test_bad_baseline_params_are_refused_in_words(admin_client):
    response = admin_client.post(reverse("admin:programs_program_add"), _program_post(baseline_params="{x: 1"))
    assert "Write the baseline overrides as JSON" in response.content.decode()


def test_baseline_params_of_the_wrong_type_are_refused_on_the_field_naming_the_key(admin_client):
    """{"adjustment_hours": "abc"} was saved and failed the program's first settlement; "1_0" was read as 10 hours."""
    url = reverse("admin:programs_program_add")
    for text, key in (('{"adjustment_hours": "abc"}', "abc"), ('{"adjustment_hours": "1_0"}', "1_0")):
        response = admin_client.post(url, _program_post(baseline_params=text))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert errors["baseline_params"] == [f"adjustment_hours: must be a number, not '{key}'."]
    assert not Program.objects.filter(code="admin-made").exists()


def test_a_new_program_excludes_life_support_by_default():
    assert Program().excludes_life_support is True
    assert Program._meta.get_field("excludes_life_support").default is True


def test_refusals_name_the_fields_as_the_form_labels_them(admin_client):
    """The set-up form said 'enrollment_closes_on (2026-05-01) must be on or after enrollment_opens_on (2026-06-01).'
    and 'end_date ... must be on or after start_date' (the API's names) under fields labelled 'Enrollment closes on'
    and 'End date'."""
    url = reverse("admin:programs_program_add")

    def errors(**changes):
        response = admin_client.post(url, _program_post(**changes))
        assert response.status_code == 200
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", " ".join(re.findall(
            r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)))).strip()

    assert errors(enrollment_opens_on="2026-06-01", enrollment_closes_on="2026-05-01") == (
        "Enrollment closes on (2026-05-01) must be on or after Enrollment opens on (2026-06-01).")
    assert errors(**{"seasons-TOTAL_FORMS": "1", "seasons-0-name": "S", "seasons-0-start_date": "2026-09-30",
                     "seasons-0-end_date": "2026-06-01"}) == (
        "End date (2026-06-01) must be on or after Start date (2026-09-30).")
    assert errors(reported_min_completeness_pct="101") == (
        "Reported min completeness pct is a whole percent from 0 to 100, not 101.")
    assert not Program.objects.exists()


def _errors(html: str) -> list[str]:
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", m).split()).replace("&#x27;", "'") for m in found]


@pytest.mark.parametrize("prefix, rows, field, label, value", [
    ("participation_rules", {"effective_from": "2027-01-01", "weekdays_allowed": "on",
                             "opt_out_allowance_kind": "unlimited"}, "effective_from", "Effective from", "2027-01-01"),
    ("seasons", {"name": "Summer", "start_date": None, "end_date": None}, "name", "Name", "Summer"),
    ("questions", {"code": "ac", "text": "Central AC?", "answer_type": "boolean", "position": "0"}, "code", "Code",
     "ac"),
])
def test_two_items_with_the_same_key_are_refused_naming_the_field_in_words(admin_client, prefix, rows, field, label,
                                                                          value):
    """Two participation rules from one date read "Please correct the duplicate data for effective_from." above the
    rules, with no field marked: Django's text with the column's code name."""
    data = _program_post(**{f"{prefix}-TOTAL_FORMS": "2"})
    for i, dates in enumerate((("2027-06-01", "2027-06-30"), ("2027-08-01", "2027-08-31"))):
        for key, val in rows.items():
            data[f"{prefix}-{i}-{key}"] = val if val is not None else dates[key == "end_date"]
    response = admin_client.post(reverse("admin:programs_program_add"), data)
    assert response.status_code == 200 and not Program.objects.exists()
    html = response.content.decode()
    errors = _errors(html)
    assert not any(field in e and label not in e for e in errors), errors
    assert any(f"{label} {value}" in e for e in errors), errors
    # the second row's field is the one marked
    assert re.search(rf'id="id_{prefix}-1-{field}_error"', html), errors


def _incentive(**values):
    data = _program_post(**{"incentive_rules-TOTAL_FORMS": "1"})
    row = {"kind": "per_event", "basis": "flat", "amount": "1", "opted_out_counts_zero": "on",
           "season_enrollment": "any"} | values
    data.update({f"incentive_rules-0-{k}": v for k, v in row.items()})
    return data


@pytest.mark.parametrize("values, field, expected", [
    # the codes of the values were given, not what the drop-downs show
    ({"basis": "per_kwh_enrolled"}, "basis",
     ["The basis “$ per kWh of enrolled usable energy” does not fit a “Per-event participation” incentive; choose "
      "“Flat $” or “$ per device”."]),
    # twice, once half-translated: "Price set is required when basis is Price set. price_set is required when ..."
    ({"kind": "performance_kwh", "basis": "price_set", "amount": "0"}, "price_set",
     ["Choose a price set: the basis “Interval price set ($/kWh per interval)” pays each interval at its price."]),
    ({"amount": "-5"}, "amount", ["Amount must be zero or more."]),
    ({"amount": "0"}, "amount", ["Amount must be more than zero for a “Per-event participation” incentive."]),
    ({"kind": "opt_out_penalty", "amount": "5", "opt_out_consequence": "forfeit_season"}, "amount",
     ["The opt-out consequence “Forfeit the seasonal incentive” has no amount; set Amount to 0."]),
])
def test_incentive_refusals_name_the_values_as_the_form_shows_them(admin_client, values, field, expected):
    response = admin_client.post(reverse("admin:programs_program_add"), _incentive(**values))
    assert response.status_code == 200 and not Program.objects.exists()
    html = response.content.decode()
    block = re.search(rf'<ul class="errorlist"[^>]*id="id_incentive_rules-0-{field}_error"[^>]*>(.*?)</ul>', html, re.S)
    assert block, _errors(html)
    shown = [unescape(" ".join(re.sub(r"<[^>]+>", " ", m).split()))
             for m in re.findall(r"<li>(.*?)</li>", block.group(1), re.S)]
    assert shown == expected


def _help_of(html: str, name: str) -> str:
    """The help text shown under the (empty, template) inline field ``name``."""
    block = re.search(rf'<div class="help"[^>]*id="id_{re.escape(name)}_helptext"[^>]*>(.*?)</div>', html, re.S)
    assert block, f"no help text for {name}"
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", block.group(1)).split()))


@pytest.mark.parametrize("name, words", [
    ("participation_rules-__prefix__-effective_from", "latest rule in effect"),
    ("participation_rules-__prefix__-max_events_per_season", "empty = no limit"),
    ("participation_rules-__prefix__-max_events_per_week", "empty = no limit"),
    ("participation_rules-__prefix__-max_event_hours_per_day", "hours"),
    ("participation_rules-__prefix__-min_notice_minutes", "between the notification and the start"),
    ("participation_rules-__prefix__-max_duration_minutes", "minutes"),
    ("participation_rules-__prefix__-opt_out_allowance_count", "per season"),
    ("incentive_rules-__prefix__-season", "empty = every season"),
    ("incentive_rules-__prefix__-top_percent_events", "largest"),
    ("incentive_rules-__prefix__-price_set", "Load an interval price set"),
    ("incentive_rules-__prefix__-opt_out_consequence", "opt-out penalty"),
])
def test_every_limit_and_rate_field_says_its_unit_and_what_empty_means(admin_client, name, words):
    """The rule limits had no help text: nothing said that an empty limit means no limit, what the notice is
    measured between, or what "Top percent events" averages."""
    html = admin_client.get(reverse("admin:programs_program_add")).content.decode()
    assert words in _help_of(html, name)
