"""Numbers read from text: an underscore between digits is not a number here.

Python's ``int``, ``float`` and ``Decimal`` accept ``1_5`` as 15 (PEP 515's digit grouping, meant for source code),
and so do numpy and Django's and DRF's number fields, which call them. No meter file, CIS extract, API client or
person typing in a form means it: ``1_5`` is a typo of ``1.5`` or ``15``, and reading it as 15 is a wrong number
taken without a word. So every door that reads a number from text refuses it as it refuses ``abc``, with the door's
usual error naming the row or line and the field:

- the parsers and importers call ``to_int`` / ``to_float`` / ``to_decimal`` (or ``has_digit_separator`` before a
  vectorised conversion) instead of the built-ins: the same result, and the same exception as the built-in raises
  for a text that is not a number (``ValueError``; ``decimal.InvalidOperation`` for ``to_decimal``);
- ``install()`` (run once by ``CpmConfig.ready``) makes the number fields of Django forms (the admin, the CSR and
  dashboard pages, django-filter's filters) and of DRF serializers refuse it with their ``invalid`` message, and
  Django's integer, decimal and float model fields refuse it where a text becomes a value of the field (an id in
  a URL, a related field's id, a raw-id box, a choice field): ``ValueError`` / ``ValidationError``, which the
  admin, DRF and ``ModelChoiceField`` already answer as "not found" or "not a valid choice".

Anything else the built-ins accept (surrounding spaces, exponents, ``NaN``/``inf``, which each door checks itself)
is unchanged.
"""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from typing import Any

DIGIT_SEPARATOR = "_"


def has_digit_separator(value: Any) -> bool:
    """True for a text holding ``_`` (a digit separator to Python); False for anything else, numbers included."""
    return isinstance(value, str) and DIGIT_SEPARATOR in value


def to_int(value: Any) -> int:
    """``int(value)``, refusing a text with a digit separator (``ValueError``, as ``int("abc")``)."""
    if has_digit_separator(value):
        raise ValueError(f"not a whole number: {value!r}")
    return int(value)


def to_float(value: Any) -> float:
    """``float(value)``, refusing a text with a digit separator (``ValueError``, as ``float("abc")``)."""
    if has_digit_separator(value):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def to_decimal(value: Any) -> Decimal:
    """``Decimal(value)``, refusing a text with a digit separator (``decimal.InvalidOperation``, as
    ``Decimal("abc")``)."""
    if has_digit_separator(value):
        raise InvalidOperation(f"not a number: {value!r}")
    return Decimal(value)


def _refusing(method, refuse):
    """``method(self, value, ...)`` that first calls ``refuse(self, value)`` (which raises) for a text with a digit
    separator."""
    @functools.wraps(method)
    def guarded(self, value, *args, **kwargs):
        if isinstance(value, str) and DIGIT_SEPARATOR in value:
            refuse(self, value)
        return method(self, value, *args, **kwargs)

    guarded.refuses_digit_separator = True
    return guarded


def _form_invalid(field, value):
    from django.core.exceptions import ValidationError

    raise ValidationError(field.error_messages["invalid"], code="invalid")


def _serializer_invalid(field, value):
    field.fail("invalid")


def _model_invalid(field, value):
    from django.core.exceptions import ValidationError

    raise ValidationError(field.error_messages["invalid"], code="invalid", params={"value": value})


def _lookup_invalid(field, value):
    raise ValueError(f"Field '{field.name}' expected a number but got {value!r}.")


def install() -> None:
    """Make the number fields of Django forms, DRF serializers and Django models refuse a text with a digit
    separator (see the module docstring). Idempotent; called once by ``CpmConfig.ready``.

    Forms (``IntegerField``, ``DecimalField``, ``FloatField`` and their subclasses: ``IdField``, django-filter's
    ``NumberFilter``): ``ValidationError`` code ``invalid`` ("Enter a whole number." / "Enter a number.").
    Serializers (the same three): the field's ``invalid`` message ("A valid integer is required." / "A valid
    number is required."). Models: ``to_python`` raises the field's ``invalid`` ``ValidationError``; an integer
    or float field's ``get_prep_value`` (a lookup) ``ValueError``, as for ``abc`` (a decimal field's goes through
    its ``to_python``)."""
    from django import forms
    from django.db.models import fields as model_fields
    from rest_framework import fields as serializer_fields

    targets = [(cls, "to_python", _form_invalid) for cls in (forms.IntegerField, forms.DecimalField,
                                                              forms.FloatField)]
    targets += [(cls, "to_internal_value", _serializer_invalid) for cls in (
        serializer_fields.IntegerField, serializer_fields.DecimalField, serializer_fields.FloatField)]
    targets += [(cls, "to_python", _model_invalid) for cls in (
        model_fields.IntegerField, model_fields.DecimalField, model_fields.FloatField)]
    targets += [(cls, "get_prep_value", _lookup_invalid) for cls in (model_fields.IntegerField,
                                                                     model_fields.FloatField)]
    for cls, name, refuse in targets:
        method = cls.__dict__[name]
        if not getattr(method, "refuses_digit_separator", False):
            setattr(cls, name, _refusing(method, refuse))


def ascii_digits(text: Any) -> bool:
    """True for a non-empty text of ASCII digits only: what an id typed by a person or a client is. ``str.isdigit``
    also says yes to superscripts (``²``) and other scripts' digits, which ``int`` refuses (``ValueError``) or reads
    as another number: a door that checks with it and then calls ``int`` answered HTTP 500."""
    return isinstance(text, str) and text.isascii() and text.isdigit()
