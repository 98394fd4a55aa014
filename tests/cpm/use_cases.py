"""The registry of write use cases as the running system has it: every module that registers use cases imported.

Use cases register when their service module is imported (``@use_case``); a test reading ``USE_CASES`` first imports
every service module of every app (a package's sub-modules too), the import modules and the meter-data room.
"""

from __future__ import annotations

import importlib
import pkgutil

from cpm.base.capabilities import USE_CASES, UseCase

#: Modules whose import registers write use cases (a package: with every sub-module).
SERVICE_MODULES = (
    "programs.services", "devices.services", "enrollments.services", "events.services", "settlement.services",
    "devices.imports", "enrollments.imports", "settlement.meterdata", "cpm.openadr3.services",
)


def _import_tree(name: str) -> None:
    module = importlib.import_module(name)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{name}."):
        importlib.import_module(info.name)


def load_use_cases() -> dict[str, UseCase]:
    """``USE_CASES`` once every registering module is imported."""
    for name in SERVICE_MODULES:
        _import_tree(name)
    return USE_CASES
