"""Where the project finds the Green Button sample files, for the demo, the tests and the benchmarks.

No Django import: the benchmark's generator runs in processes without Django settings.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # cpm/base/paths.py -> the repository root


def shared_path(*parts: str) -> Path:
    """``shared/<parts>`` beside the repository root (``../shared``), or beside a parent of it up to three levels
    (a clone or a git worktree nested below the folder that holds ``shared``): the first that exists, else the one
    beside the root (which callers report as missing)."""
    for parent in list(REPO.parents)[:3]:
        candidate = parent.joinpath("shared", *parts)
        if candidate.exists():
            return candidate
    return REPO.parent.joinpath("shared", *parts)


def green_button_dir() -> Path:
    """``$GREENBUTTON_DIR`` when set; else ``shared/data/greenbutton`` found by ``shared_path`` (``../shared`` beside
    the repository root, or beside a parent of it). The path may not exist: callers say so and fall back to
    synthetic data."""
    if os.environ.get("GREENBUTTON_DIR"):
        return Path(os.environ["GREENBUTTON_DIR"])
    return shared_path("data", "greenbutton")
