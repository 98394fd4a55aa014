"""Set-based foreign keys: a reference checked once per statement over all its rows, not by one trigger per row.

A PostgreSQL foreign key checks each inserted row on its own: one after-trigger event queued per row and key, then
one SPI query per event (at commit when deferred). For the bulk tables of a reservation (the ledger and the
participations, 100,000s of rows per event, four keys each) that is most of the commit: about 0.29 s of backend
CPU per 100,000 rows and key (BENCHMARKS.md, issue 20). A ``SetKey`` enforces the same rule with triggers that
look at a whole statement's rows at once:

* child INSERT (statement level, the inserted rows as a transition table): the distinct referenced keys are looked
  up in one query that takes ``FOR KEY SHARE`` row locks on the referenced rows, exactly the lock a foreign key
  check takes, so a concurrent DELETE of a referenced row waits for this transaction (and a row deleted meanwhile
  is not found); a key that is not there raises ``foreign_key_violation`` (SQLSTATE 23503, Django's
  ``IntegrityError``) naming the constraint and the key;
* child UPDATE that changes the key columns (row level, only when they change): the same check for that row;
* referenced DELETE (statement level) and UPDATE of the referenced columns (row level): refused while a row still
  references the old key (``ON DELETE NO ACTION``; Django's ``on_delete`` CASCADE / PROTECT run in Python first,
  as with a database foreign key).

Nulls match nothing and are not checked (``MATCH SIMPLE``, as a foreign key). Checks run at the end of each
statement (a foreign key declared ``DEFERRABLE INITIALLY DEFERRED`` runs them at commit): the referenced row must
exist when the referencing row is written. Not covered: TRUNCATE of the referenced table alone (a foreign key
refuses it; this does not), which the application never does.

On SQLite (the embedded default) the referencing side is row-level triggers (SQLite has no statement-level
triggers; the error is "FOREIGN KEY constraint failed: <name>", an ``IntegrityError``); deleting a referenced row is
left to Django's ``on_delete`` there (a trigger cannot be deferred, and Django's test flush empties referenced tables
first).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetKey:
    """``table``.``columns`` reference ``ref_table``.``ref_columns`` (a primary key or unique index), under
    ``name`` (the constraint name in errors; also the prefix of the trigger and function names)."""

    name: str
    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...] = ("id",)

    def _match(self, child: str, ref: str) -> str:
        return " AND ".join(f'{ref}."{r}" = {child}."{c}"' for c, r in zip(self.columns, self.ref_columns,
                                                                           strict=True))

    def _not_null(self, alias: str) -> str:
        return " AND ".join(f'{alias}."{c}" IS NOT NULL' for c in self.columns)

    def _changed(self, columns: tuple[str, ...]) -> str:
        return " OR ".join(f'OLD."{c}" IS DISTINCT FROM NEW."{c}"' for c in columns)

    def _cols(self, columns: tuple[str, ...]) -> str:
        return ", ".join(f'"{c}"' for c in columns)

    # --------------------------------------------------------------------------------------------- PostgreSQL
    def postgresql_create(self) -> list[str]:
        """The functions and triggers (idempotent: ``CREATE OR REPLACE``, triggers dropped first)."""
        n, t, rt = self.name, self.table, self.ref_table
        cols, rcols = self._cols(self.columns), self._cols(self.ref_columns)
        cols_k = ", ".join(f'k."{c}"' for c in self.columns)
        rcols_r = ", ".join(f'r."{c}"' for c in self.ref_columns)
        key_text = " || ', ' || ".join(f'k."{c}"::text' for c in self.columns)
        old_key_text = " || ', ' || ".join(f'o."{r}"::text' for r in self.ref_columns)
        # The inserted keys as one array on the referenced index (the scan sorts and de-duplicates it, so each
        # referenced row is probed and locked once, in index order): about twice as fast as a join over the
        # statement's rows. A composite key also matches the other columns of each pair.
        pairs = ("" if len(self.columns) == 1 else
                 f"\n       AND ({rcols_r}) IN (SELECT {cols_k} FROM new_rows k)")
        # The referenced side: nested loops probing the referencing table's index per deleted key (a hash join
        # could read the whole referencing table for one deleted row).
        plan = "SET enable_hashjoin = off SET enable_mergejoin = off"
        violation = (f"RAISE EXCEPTION 'insert or update on table \"%\" violates foreign key constraint \"{n}\"', "
                     f"TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{n}', "
                     f"DETAIL = format('Key ({cols.replace(chr(34), '')})=(%s) is not present in table "
                     f"\"{rt}\".', missing)")
        still = (f"RAISE EXCEPTION 'update or delete on table \"{rt}\" violates foreign key constraint \"{n}\" on "
                 f"table \"{t}\"' USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{n}', "
                 f"DETAIL = format('Key ({rcols.replace(chr(34), '')})=(%s) is still referenced from table "
                 f"\"{t}\".', missing)")
        return [
            f"""CREATE OR REPLACE FUNCTION {n}_ins() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE wanted bigint; found bigint; missing text;
BEGIN
  SELECT count(*) INTO wanted FROM (SELECT DISTINCT {cols} FROM new_rows k WHERE {self._not_null('k')}) k;
  IF wanted = 0 THEN RETURN NULL; END IF;
  SELECT count(*) INTO found FROM (
    SELECT 1 FROM "{rt}" r
     WHERE r."{self.ref_columns[0]}" = ANY (ARRAY(SELECT k."{self.columns[0]}" FROM new_rows k
                                                 WHERE {self._not_null('k')})){pairs}
       FOR KEY SHARE OF r) s;
  IF found <> wanted THEN
    SELECT {key_text} INTO missing FROM new_rows k WHERE {self._not_null('k')}
      AND NOT EXISTS (SELECT 1 FROM "{rt}" r WHERE {self._match('k', 'r')}) LIMIT 1;
    {violation};
  END IF;
  RETURN NULL;
END $fn$""",
            f"""CREATE OR REPLACE FUNCTION {n}_upd() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE missing text;
BEGIN
  IF {" AND ".join(f'NEW."{c}" IS NOT NULL' for c in self.columns)} THEN
    PERFORM 1 FROM "{rt}" r WHERE {self._match('NEW', 'r')} FOR KEY SHARE OF r;
    IF NOT FOUND THEN
      missing := {" || ', ' || ".join(f'NEW."{c}"::text' for c in self.columns)};
      {violation};
    END IF;
  END IF;
  RETURN NULL;
END $fn$""",
            f"""CREATE OR REPLACE FUNCTION {n}_refdel() RETURNS trigger LANGUAGE plpgsql {plan} AS $fn$
DECLARE missing text;
BEGIN
  SELECT {old_key_text} INTO missing FROM old_rows o
    WHERE EXISTS (SELECT 1 FROM "{t}" c WHERE {self._match('c', 'o')}) LIMIT 1;
  IF missing IS NOT NULL THEN
    {still};
  END IF;
  RETURN NULL;
END $fn$""",
            f"""CREATE OR REPLACE FUNCTION {n}_refupd() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE missing text;
BEGIN
  PERFORM 1 FROM "{t}" c WHERE {self._match('c', 'OLD')} LIMIT 1;
  IF FOUND THEN
    missing := {" || ', ' || ".join(f'OLD."{r}"::text' for r in self.ref_columns)};
    {still};
  END IF;
  RETURN NULL;
END $fn$""",
            *self.postgresql_drop_triggers(),
            f'CREATE TRIGGER {n}_ins AFTER INSERT ON "{t}" REFERENCING NEW TABLE AS new_rows '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {n}_ins()",
            f'CREATE TRIGGER {n}_upd AFTER UPDATE OF {cols} ON "{t}" FOR EACH ROW '
            f"WHEN ({self._changed(self.columns)}) EXECUTE FUNCTION {n}_upd()",
            f'CREATE TRIGGER {n}_refdel AFTER DELETE ON "{rt}" REFERENCING OLD TABLE AS old_rows '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {n}_refdel()",
            f'CREATE TRIGGER {n}_refupd AFTER UPDATE OF {rcols} ON "{rt}" FOR EACH ROW '
            f"WHEN ({self._changed(self.ref_columns)}) EXECUTE FUNCTION {n}_refupd()",
        ]

    def postgresql_drop_triggers(self) -> list[str]:
        return [f'DROP TRIGGER IF EXISTS {self.name}_{kind} ON "{table}"'
                for kind, table in (("ins", self.table), ("upd", self.table), ("refdel", self.ref_table),
                                    ("refupd", self.ref_table))]

    def postgresql_drop(self) -> list[str]:
        return [*self.postgresql_drop_triggers(),
                *(f"DROP FUNCTION IF EXISTS {self.name}_{kind}()" for kind in ("ins", "upd", "refdel", "refupd"))]

    # ------------------------------------------------------------------------------------------------- SQLite
    def sqlite_create(self) -> list[str]:
        """The referencing side only: SQLite triggers cannot be deferred, and Django empties a test database table
        by table (``flush``), referenced tables first. Deleting a referenced row is Django's ``on_delete`` there."""
        n, t, rt = self.name, self.table, self.ref_table
        absent = f'NOT EXISTS (SELECT 1 FROM "{rt}" r WHERE {self._match("NEW", "r")})'
        fail = f"BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: {n}'); END"
        return [
            *self.sqlite_drop(),
            f'CREATE TRIGGER {n}_ins BEFORE INSERT ON "{t}" WHEN {self._not_null("NEW")} AND {absent} {fail}',
            f'CREATE TRIGGER {n}_upd BEFORE UPDATE OF {self._cols(self.columns)} ON "{t}" '
            f'WHEN {self._not_null("NEW")} AND {absent} {fail}',
        ]

    def sqlite_drop(self) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {self.name}_{kind}" for kind in ("ins", "upd", "refdel", "refupd")]

    def create(self, vendor: str) -> list[str]:
        """The statements installing this key on ``vendor`` (``connection.vendor``)."""
        return self.postgresql_create() if vendor == "postgresql" else self.sqlite_create()

    def drop(self, vendor: str) -> list[str]:
        return self.postgresql_drop() if vendor == "postgresql" else self.sqlite_drop()


def install_operation(keys: list, *, drop_constraints: list[tuple[str, str]] = (),
                      restore_constraints: list[str] = ()):
    """A migration operation installing ``keys`` on the connection's vendor (and reversing it): ``SetKey``s, or any
    set-based check with ``create(vendor)`` / ``drop(vendor)`` (``cpm.base.setexclusion.SetExclusion``).

    ``drop_constraints``: (table, constraint) pairs dropped first on PostgreSQL (the database foreign keys or
    exclusion constraints the set-based checks replace); ``restore_constraints``: the PostgreSQL statements
    re-creating them when the migration is reversed."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            for table, constraint in drop_constraints:
                schema_editor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{constraint}"')
        for key in keys:
            for sql in key.create(vendor):
                schema_editor.execute(sql, params=None)

    def backwards(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for key in keys:
            for sql in key.drop(vendor):
                schema_editor.execute(sql, params=None)
        if vendor == "postgresql":
            for sql in restore_constraints:
                schema_editor.execute(sql, params=None)

    return migrations.RunPython(forwards, backwards)
