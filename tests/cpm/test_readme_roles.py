"""README "Roles" says which role may do what: its table is checked against the roles and the registry of use cases.

Rows: one per capability (``Cap``), with the write use cases registered with it (``USE_CASES``); columns: the seven
roles, a check mark where the role grants the capability (``cpm.base.roles.ROLES``).
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

from cpm.base.capabilities import Cap
from cpm.base.roles import ROLES
from tests.cpm.use_cases import load_use_cases

README = Path(__file__).resolve().parents[2] / "README.md"
CHECK = "✓"


def roles_table() -> tuple[list[str], list[list[str]]]:
    """The header and the rows (cells stripped) of the first table in README's "Roles" section."""
    text = README.read_text()
    section = text.split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    assert len(lines) > 2, "README Roles has no table"

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    assert set(lines[1].replace("|", "").replace(":", "")) <= {"-", " "}, "second line must be the separator"
    return header, [cells(line) for line in lines[2:]]


def granted(role: str, cap: Cap) -> bool:
    return any(fnmatch(f"cpm.{cap.value}", pattern) for pattern in ROLES[role])


def test_the_readme_roles_table_matches_the_roles_and_the_registry():
    use_cases = load_use_cases()
    header, rows = roles_table()
    assert header[:2] == ["Capability", "Write use cases it allows"]
    roles = header[2:]
    assert sorted(roles) == sorted(ROLES) and len(roles) == len(ROLES) == 7

    seen: list[Cap] = []
    problems: list[str] = []
    for row in rows:
        assert len(row) == len(header), f"row with {len(row)} cells: {row}"
        found = re.search(r"\(`([a-z_]+)`\)\s*$", row[0])
        assert found, f"capability cell must end with (`<capability>`): {row[0]!r}"
        cap = Cap(found.group(1))
        seen.append(cap)
        listed = set(re.findall(r"`([^`]+)`", row[1]))
        registered = {name for name, uc in use_cases.items() if cap in uc.capabilities}
        if listed != registered:
            problems.append(f"{cap.value}: README lists but not registered {sorted(listed - registered)}; "
                            f"registered but not in README {sorted(registered - listed)}")
        for role, mark in zip(roles, row[2:], strict=True):
            assert mark in ("", CHECK), f"{cap.value} / {role}: {mark!r} (a check mark or nothing)"
            if (mark == CHECK) != granted(role, cap):
                problems.append(f"{cap.value} / {role}: README says {'yes' if mark else 'no'}, the role says "
                                f"{'yes' if granted(role, cap) else 'no'}")
    assert sorted(seen) == sorted(Cap) and len(seen) == len(set(seen)), "one row per capability"
    # Every registered use case appears under each of its capabilities (so none is missing from the table).
    assert use_cases, "no use case registered"
    assert not problems, "\n".join(problems)
