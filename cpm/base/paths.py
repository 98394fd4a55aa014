"""Where the project finds the Green Button sample files, for the demo, the tests and the benchmarks.

No Django import: the benchmark's generator runs in processes without Django settings.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # cpm/base/paths.py -> the repository root


def green_button_dir() -> Path:
    """``$GREENBUTTON_DIR`` when set; else ``shared/data/greenbutton`` beside the repository root (``../shared``), or
    beside a parent of it (a git worktree nested below the main checkout). The path may not exist: callers say so
    and fall back to synthetic data."""
    if os.environ.get("GREENBUTTON_DIR"):
        return Path(os.environ["GREENBUTTON_DIR"])
    for parent in list(REPO.parents)[:3]:
        candidate = parent / "shared" / "data" / "greenbutton"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data" / "greenbutton"
