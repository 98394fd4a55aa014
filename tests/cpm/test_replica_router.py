"""The read-replica router (``cpm.base.replica``) on two real SQLite databases (a primary and a copy standing in for
its replica), in a process of their own: marked selectors read the replica, everything else the primary; reads
inside a transaction and all writes go to the primary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_marked_selectors_read_the_replica_and_the_rest_the_primary(tmp_path):
    primary, replica = tmp_path / "primary.sqlite3", tmp_path / "replica.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{primary}", "CELERY_BROKER_URL": ""}
    env.pop("DATABASE_REPLICA_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    shutil.copyfile(primary, replica)  # the replica starts as a copy of the primary
    out = subprocess.run([sys.executable, "-m", "tests.cpm.replica_check"], cwd=ROOT, check=True,
                         env={**env, "DATABASE_REPLICA_URL": f"sqlite:///{replica}"}, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["marked"] == ["Replicason"]  # the CSR search (marked) found the replica's row, not the primary's
    assert result["plain"] == ["Primaryson"]  # an unmarked read: the primary
    assert result["in_transaction"] == ["Primaryson"]  # a marked selector inside a transaction: the primary
    assert result["primary_after_save"] == [["P-1", "Pat"], ["R-1", "Robyn"]]  # the write went to the primary
