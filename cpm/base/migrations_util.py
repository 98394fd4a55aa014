"""Helpers for migrations that only apply on PostgreSQL (functional indexes, exclusion constraints)."""

from __future__ import annotations


def postgres_only(sql: str, reverse_sql: str):
    """A RunPython operation that executes ``sql`` only on PostgreSQL (SQLite keeps the portable schema)."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(reverse_sql)

    return migrations.RunPython(forwards, backwards)
