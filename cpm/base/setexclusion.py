"""Set-based exclusion: "no two live rows with the same key and overlapping ``[start, end)``", checked once per
statement over all its rows, not by a GiST index probed and grown row by row.

The participations of an event hold its devices: a device (or a device-less service point) may not take part in two
overlapping events. PostgreSQL's exclusion constraint (btree_gist, ``EXCLUDE USING gist (device_id WITH =,
tstzrange(start, end) WITH &&)``) enforces that per row: each inserted row is probed against and added to a GiST
index, about 60 % of a reservation's participation COPY at 1,000,000 devices (BENCHMARKS.md, issue 20). A
``SetExclusion`` enforces the same rule with a plain btree index on ``(key, end)`` (of the live rows, or of every
row when the table needs one on the key anyway: the probe skips rows that are not live) and triggers that look at
a whole statement's rows at once:

* INSERT (statement level, the inserted rows as a transition table): the keys' rows in ``lock_table`` (the
  devices, or the service points) are locked ``FOR NO KEY UPDATE`` in id order, then each inserted live row is
  probed on the btree for another live row of its key that ends after it starts and starts before it ends (the
  index range is the rows ending after the new row starts: the current and future ones, not the key's history);
* UPDATE (row level, only when a live row's key or window changes, or a row becomes live again): the same lock
  and probe for that row.

A clash raises ``exclusion_violation`` (SQLSTATE 23P01, Django's ``IntegrityError``) naming the constraint, as the
exclusion constraint did. Half-open windows: back-to-back rows do not clash.

Concurrency. Two transactions writing rows of one key serialize on the key's lock row: the second waits until the
first commits, and its probe (a new statement, so a new snapshot under READ COMMITTED, Django's default) sees the
first one's rows. Under SERIALIZABLE the probe's reads are predicate-locked and a write skew is refused by
PostgreSQL. Under REPEATABLE READ the probe would not see a concurrent commit, so a write that needs the check is
refused there (SQLSTATE 25001, with the reason): no part of the application uses that level.

SQLite (the embedded default, one writer at a time) has no such trigger: the reservation's service check under the
write lock applies, as before.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetExclusion:
    """Live rows of ``table`` with equal ``key`` may not overlap in ``[start, end)``; ``live`` is the SQL condition
    on a row (``{r}`` stands for its alias) that makes it count (a partial index's predicate, if the index is
    partial); writers of one key serialize on ``lock_table``'s row ``id = key``. ``name``: the constraint name in
    errors (and the prefix of the trigger and function names)."""

    name: str
    table: str
    key: str
    lock_table: str
    live: str
    start: str = "start"
    end: str = "end"

    def _live(self, alias: str) -> str:
        return self.live.format(r=alias)

    def _violation(self, row: str, other: str) -> str:
        k, s, e = self.key, self.start, self.end
        return (f"RAISE EXCEPTION 'conflicting key value violates exclusion constraint \"{self.name}\"' "
                f"USING ERRCODE = 'exclusion_violation', CONSTRAINT = '{self.name}', TABLE = '{self.table}', "
                f"DETAIL = format('Key ({k}, [{s}, {e}))=(%s, [%s, %s)) of row %s conflicts with row %s.', "
                f"{row}.\"{k}\", {row}.\"{s}\", {row}.\"{e}\", {row}.id, {other})")

    def _guard(self) -> str:
        return ("IF current_setting('transaction_isolation') = 'repeatable read' THEN "
                f"RAISE EXCEPTION '{self.name} is checked under READ COMMITTED or SERIALIZABLE, not REPEATABLE READ' "
                "USING ERRCODE = 'invalid_transaction_state'; END IF;")

    def _probe(self, row: str, into: str = "") -> str:
        """The id of another live row of ``row``'s key overlapping it (a range of the btree on ``(key, end)``),
        ``INTO`` a PL/pgSQL variable when ``into`` names one."""
        k, s, e = self.key, self.start, self.end
        target = f" INTO {into}" if into else ""
        return (f'SELECT p.id{target} FROM "{self.table}" p WHERE p."{k}" = {row}."{k}" AND {self._live("p")} '
                f'AND p."{e}" > {row}."{s}" AND p."{s}" < {row}."{e}" AND p.id <> {row}.id LIMIT 1')

    def postgresql_create(self) -> list[str]:
        """The functions and triggers (idempotent: ``CREATE OR REPLACE``, triggers dropped first)."""
        n, t, k, s, e = self.name, self.table, self.key, self.start, self.end
        return [
            f"""CREATE OR REPLACE FUNCTION {n}_ins() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE wanted bigint; clash record;
BEGIN
  SELECT count(*) INTO wanted FROM new_rows n WHERE {self._live('n')};
  IF wanted = 0 THEN RETURN NULL; END IF;
  {self._guard()}
  PERFORM count(*) FROM (
    SELECT 1 FROM "{self.lock_table}" l
     WHERE l.id = ANY (ARRAY(SELECT n."{k}" FROM new_rows n WHERE {self._live('n')}))
     ORDER BY l.id FOR NO KEY UPDATE OF l) locked;
  SELECT n.*, o.id AS other_id INTO clash
    FROM new_rows n CROSS JOIN LATERAL ({self._probe('n')}) o
   WHERE {self._live('n')} LIMIT 1;
  IF FOUND THEN
    {self._violation('clash', 'clash.other_id')};
  END IF;
  RETURN NULL;
END $fn$""",
            f"""CREATE OR REPLACE FUNCTION {n}_upd() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE other bigint;
BEGIN
  {self._guard()}
  PERFORM 1 FROM "{self.lock_table}" l WHERE l.id = NEW."{k}" FOR NO KEY UPDATE OF l;
  {self._probe('NEW', into='other')};
  IF FOUND THEN
    {self._violation('NEW', 'other')};
  END IF;
  RETURN NULL;
END $fn$""",
            *self.postgresql_drop_triggers(),
            f'CREATE TRIGGER {n}_ins AFTER INSERT ON "{t}" REFERENCING NEW TABLE AS new_rows '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {n}_ins()",
            f'CREATE TRIGGER {n}_upd AFTER UPDATE ON "{t}" FOR EACH ROW '
            f'WHEN ({self._live("NEW")} AND (OLD."{k}" IS DISTINCT FROM NEW."{k}" OR OLD."{s}" <> NEW."{s}" '
            f'OR OLD."{e}" <> NEW."{e}" OR NOT ({self._live("OLD")}))) EXECUTE FUNCTION {n}_upd()',
        ]

    def postgresql_drop_triggers(self) -> list[str]:
        return [f'DROP TRIGGER IF EXISTS {self.name}_{kind} ON "{self.table}"' for kind in ("ins", "upd")]

    def postgresql_drop(self) -> list[str]:
        return [*self.postgresql_drop_triggers(),
                *(f"DROP FUNCTION IF EXISTS {self.name}_{kind}()" for kind in ("ins", "upd"))]

    def create(self, vendor: str) -> list[str]:
        """The statements installing this check on ``vendor`` (none on SQLite: module docstring)."""
        return self.postgresql_create() if vendor == "postgresql" else []

    def drop(self, vendor: str) -> list[str]:
        return self.postgresql_drop() if vendor == "postgresql" else []
