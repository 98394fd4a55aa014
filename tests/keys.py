"""Helpers of the tests of the database keys (``cpm.base.setkeys``)."""

from __future__ import annotations


def missing_pk(model) -> int:
    """A primary key no row of ``model`` has (beyond the largest one)."""
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
