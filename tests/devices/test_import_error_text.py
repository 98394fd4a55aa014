"""An import row's error names each field once, in one sentence: "latitude: ... places; longitude: ..." (a
message's own period stood before the separator: "... places.; longitude: ...")."""

from django.core.exceptions import ValidationError

from cpm.base.errors import DomainValidationError
from devices.imports import error_text


def test_two_fields_read_as_one_sentence():
    errors = {"latitude": ["Ensure that there are no more than 6 decimal places."],
              "longitude": ["Ensure that there are no more than 6 decimal places."]}
    expected = ("latitude: Ensure that there are no more than 6 decimal places; "
                "longitude: Ensure that there are no more than 6 decimal places.")
    assert error_text(DomainValidationError(errors)) == expected
    assert error_text(ValidationError(errors)) == expected


def test_one_field_keeps_its_period():
    assert error_text(DomainValidationError({"rate_code": ["Unknown rate code 'X9'."]})) == (
        "rate_code: Unknown rate code 'X9'.")
