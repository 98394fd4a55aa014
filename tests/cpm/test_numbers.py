"""Numbers with an underscore between digits (``1_5``): Python's int, float and Decimal, numpy, and Django's and DRF's
number fields built on them read it as 15 (PEP 515 digit grouping, meant for source code). Every door that reads a
number from text refuses it as it refuses ``abc``, naming the field (``cpm.base.numbers``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers

from cpm.base import numbers
from devices.models import Device
from programs.models import Program
from tests.factories.devices import AggregatorFactory
from tests.factories.programs import ProgramFactory


@pytest.mark.parametrize("text", ["1_5", "1_5.0", "0.2_5", "1e1_0", " 1_5 "])
def test_the_helpers_refuse_an_underscore_as_the_built_ins_refuse_a_non_number(text):
    with pytest.raises(ValueError):
        numbers.to_float(text)
    with pytest.raises(InvalidOperation):
        numbers.to_decimal(text)
    if "." not in text and "e" not in text:
        with pytest.raises(ValueError):
            numbers.to_int(text)


def test_the_helpers_read_plain_numbers_as_the_built_ins_do():
    assert (numbers.to_int(" 15 "), numbers.to_float("1.5e3"), numbers.to_decimal("-0.25")) == (
        15, 1500.0, Decimal("-0.25"))
    assert (numbers.to_int(7), numbers.to_float(2), numbers.to_decimal(3)) == (7, 2.0, Decimal(3))
    assert numbers.has_digit_separator("1_5") and not numbers.has_digit_separator("1.5")
    assert not numbers.has_digit_separator(15)


@pytest.mark.parametrize("field", [forms.IntegerField(), forms.DecimalField(), forms.FloatField()],
                         ids=["integer", "decimal", "float"])
def test_django_form_number_fields_refuse_an_underscore(field):
    """The admin, the dashboard and CSR forms and django-filter's number filters are built on these."""
    with pytest.raises(ValidationError) as exc:
        field.clean("1_5")
    assert exc.value.code == "invalid"
    assert field.clean("15") == 15


@pytest.mark.parametrize("field", [serializers.IntegerField(), serializers.FloatField(),
                                   serializers.DecimalField(max_digits=9, decimal_places=3)],
                         ids=["integer", "float", "decimal"])
def test_drf_number_fields_refuse_an_underscore(field):
    with pytest.raises(serializers.ValidationError) as exc:
        field.run_validation("1_5")
    assert exc.value.detail[0].code == "invalid"
    assert field.run_validation("15") == 15


def test_a_model_id_typed_with_an_underscore_matches_nothing(fifteen_programs):
    """A URL's id, a related field's id or an admin raw-id box: ``1_5`` was program 15."""
    text = _underscored(fifteen_programs.pk)
    with pytest.raises(ValueError):
        Program.objects.filter(pk=text).exists()
    with pytest.raises(ValidationError):
        forms.ModelChoiceField(queryset=Program.objects.all()).clean(text)
    with pytest.raises(ValidationError):
        Program._meta.pk.to_python(text)
    assert Program.objects.filter(pk=str(fifteen_programs.pk)).get() == fifteen_programs


@pytest.fixture
def fifteen_programs(db):
    programs = ProgramFactory.create_batch(15)
    return programs[-1]


def _underscored(pk: int) -> str:
    return f"{str(pk)[:1]}_{str(pk)[1:]}" if pk > 9 else f"0_{pk}"


def test_api_detail_url_with_an_underscore_is_404(admin_api, fifteen_programs):
    assert admin_api.get(f"/api/v1/programs/{fifteen_programs.pk}/").status_code == 200
    assert admin_api.get(f"/api/v1/programs/{_underscored(fifteen_programs.pk)}/").status_code == 404


def test_api_number_field_with_an_underscore_is_400_naming_it(admin_api, settings):
    settings.SECURE_SSL_REDIRECT = False
    AggregatorFactory(code="tesla")
    r = admin_api.post("/api/v1/devices/", {"aggregator": "tesla", "aggregator_device_id": "pw-1",
                                            "device_type": "battery", "capacity_kw": "1_5"}, format="json")
    assert r.status_code == 400 and r.json()["capacity_kw"] == ["A valid number is required."]
    assert not Device.objects.exists()


def test_api_id_filter_and_page_with_an_underscore_are_refused(admin_api, fifteen_programs, settings):
    settings.SECURE_SSL_REDIRECT = False
    r = admin_api.get("/api/v1/mutual-exclusions/", {"program": _underscored(fifteen_programs.pk)})
    assert r.status_code == 400 and r.json()["program"] == ["Enter a whole number."]
    r = admin_api.get("/api/v1/programs/", {"page": "1_0"})
    assert r.status_code == 404 and "Invalid page \"1_0\"" in r.json()["detail"]
    r = admin_api.get("/api/v1/programs/", {"page_size": "1_0"})
    assert r.status_code == 200 and len(r.json()["results"]) == 15  # not 10: an unreadable size is the default


def test_admin_change_url_with_an_underscore_is_not_found(client, admin_user, fifteen_programs, settings):
    settings.SECURE_SSL_REDIRECT = False
    client.force_login(admin_user)
    url = f"/admin/programs/program/{_underscored(fifteen_programs.pk)}/change/"
    response = client.get(url, follow=True)
    assert response.redirect_chain and "doesn’t exist" in response.content.decode()
