"""Natural keys in the API: a client names a row by what it knows (an account number, a service point id, a program
code, a device serial or aggregator device id), or by its id as before.

A JSON integer is an id; a string is looked up by each natural key in turn, then, if it is all digits, as an id. An
unknown key is a 400 naming the field ("No account has account number or id 'X'."); a key matching two rows is a
400 asking for the id.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import MultipleObjectsReturned
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .numbers import ascii_digits


def _noun(model) -> str:
    return str(model._meta.verbose_name)


def key_words(model, keys: Sequence[str]) -> str:
    """``"account number or id"`` for the error messages."""
    return " or ".join([*(str(model._meta.get_field(k).verbose_name) for k in keys), "id"])


MAX_ID = 2**63 - 1  # a bigint: a larger "id" names nothing (and must not reach the database)
MAX_KEY_CHARS = 300


def _check_value(model, value, keys: Sequence[str]) -> None:
    """Refuse what a database cannot be asked: NUL characters, absurdly long text, ids beyond a bigint."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"Name the {_noun(model)} by its {key_words(model, keys)}.")
    if isinstance(value, int) and not 0 < value <= MAX_ID:
        raise ValueError(f"No {_noun(model)} has id {value}.")
    if isinstance(value, str) and ("\x00" in value or len(value) > MAX_KEY_CHARS):
        raise ValueError(f"Not a {key_words(model, keys)}: it contains a NUL character or is longer than "
                         f"{MAX_KEY_CHARS} characters.")


def _digits_id(text: str) -> int | None:
    return int(text) if ascii_digits(text) and 0 < int(text) <= MAX_ID else None


def lookup(queryset, value, keys: Sequence[str]):
    """The row of ``queryset`` named by ``value`` (see the module's doc), or raise ``ValueError`` with a message."""
    model = queryset.model
    _check_value(model, value, keys)
    if isinstance(value, int):
        found = queryset.filter(pk=value).first()
        if found is None:
            raise ValueError(f"No {_noun(model)} has id {value}.")
        return found
    text = value.strip()
    for key in keys:
        try:
            found = queryset.filter(**{key: text}).get()
        except queryset.model.DoesNotExist:
            continue
        except MultipleObjectsReturned:
            raise ValueError(f"More than one {_noun(model)} has {key_words(model, [key])[:-6]} {text!r}; name it "
                             "by its id.") from None
        return found
    if _digits_id(text) is not None:
        found = queryset.filter(pk=_digits_id(text)).first()
        if found is not None:
            return found
    raise ValueError(f"No {_noun(model)} has {key_words(model, keys)} {text!r}.")


def lookup_many(queryset, values: Sequence, keys: Sequence[str]) -> list:
    """The rows named by ``values`` (ids or natural keys, as ``lookup``) in two queries at most, in order; ``None``
    for a value naming no row. Raises ``ValueError`` for a value of the wrong type or naming two rows."""
    model = queryset.model
    ids: set[int] = set()
    texts: set[str] = set()
    for value in values:
        _check_value(model, value, keys)
        if isinstance(value, int):
            ids.add(value)
        else:
            texts.add(value.strip())
            if _digits_id(value.strip()) is not None:
                ids.add(_digits_id(value.strip()))
    by_pk = {row.pk: row for row in queryset.filter(pk__in=ids)} if ids else {}
    by_key: dict[tuple[str, str], list] = {}
    if texts:
        q = Q()
        for key in keys:
            q |= Q(**{f"{key}__in": texts})
        for row in queryset.filter(q):
            for key in keys:
                by_key.setdefault((key, getattr(row, key)), []).append(row)
    out = []
    for value in values:
        if isinstance(value, int):
            out.append(by_pk.get(value))
            continue
        text, found = value.strip(), None
        for key in keys:
            rows = by_key.get((key, text), [])
            if len(rows) > 1:
                raise ValueError(f"More than one {_noun(model)} has {key_words(model, [key])[:-6]} {text!r}; name "
                                 "it by its id.")
            if rows:
                found = rows[0]
                break
        if found is None and _digits_id(text) is not None:
            found = by_pk.get(_digits_id(text))
        out.append(found)
    return out


NATURAL_KEY_SCHEMA = {"oneOf": [{"type": "string"}, {"type": "integer"}]}


class KeyField(serializers.Field):
    """A natural key or an id, not resolved here (a view resolves it through the rows the user may see)."""

    default_error_messages = {"invalid": "Give a natural key (text) or an id (integer)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str) or (isinstance(data, str) and not data.strip()):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


extend_schema_field(NATURAL_KEY_SCHEMA)(KeyField)


@extend_schema_field(NATURAL_KEY_SCHEMA)
class NaturalKeyRelatedField(serializers.RelatedField):
    """A related row named by one of its natural ``keys`` or by its id (input); rendered as its id, as before."""

    default_error_messages = {"not_found": "{message}"}

    def __init__(self, *, keys: Sequence[str], **kwargs):
        self.keys = tuple(keys)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return lookup(self.get_queryset(), data, self.keys)
        except ValueError as exc:
            self.fail("not_found", message=str(exc))

    def to_representation(self, value):
        return value.pk

