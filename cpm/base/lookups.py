"""``<field>__any=[...]``: an ``IN`` list sent as ONE array parameter on PostgreSQL.

``field__in=ids`` with 5,000 ids makes Django write 5,000 placeholders, which psycopg converts one by one and the
planner treats as a long constant list; ``field__any=ids`` becomes ``field = ANY(%s::bigint[])`` with one list
parameter, the same index scan at a fraction of the client cost. Other databases get the plain ``IN`` list. Values
must be plain column values (ids, not model instances): they are not converted one by one. An empty list matches
nothing, as ``__in`` does. Registered on every field by ``CpmConfig``.

Integers travel as ONE array literal (``'{1,2,3}'::bigint[]``) built with ``str.join``: psycopg's list adaptation
dumps element by element (8.6 ms for 5,000 ids against 1.1 ms, issue 20). Other values are adapted by psycopg.
A set or frozenset of ids also skips Django's per-element ``resolve_lookup_value`` pass over a list or tuple.
"""

from __future__ import annotations

from django.db.models import Field, ForeignObject
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In

from .bulk import int_array_literal


class _ArrayParameter:
    lookup_name = "any"

    def get_prep_lookup(self):
        # Plain column values (ids), taken as they are: Django's per-value preparation of a 5,000-id list costs
        # more than the query it feeds.
        if isinstance(self.rhs, list | tuple | set | frozenset):
            return list(self.rhs)
        return super().get_prep_lookup()

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql" or not isinstance(self.rhs, list | tuple | set | frozenset):
            return super().as_sql(compiler, connection)
        values = [v for v in self.rhs if v is not None]
        if not values:
            return super().as_sql(compiler, connection)  # raises EmptyResultSet, as __in=[] does
        lhs, lhs_params = self.process_lhs(compiler, connection)
        db_type = self.lhs.output_field.db_type(connection)
        if all(type(v) is int for v in values):
            values = int_array_literal(values)
        return f"{lhs} = ANY(%s::{db_type}[])", (*lhs_params, values)


class AnyOf(_ArrayParameter, In):
    """``__any`` on plain fields (``pk__any=ids``)."""


class RelatedAnyOf(_ArrayParameter, RelatedIn):
    """``__any`` on foreign keys (``device_id__any=ids``), which Django gives lookups of their own."""


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(RelatedAnyOf)
