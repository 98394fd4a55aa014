"""Shared assertions of the bad-file corpus: manifests, table counts, the error check."""

from __future__ import annotations

import html
import json
from pathlib import Path

from django.apps import apps

CORPUS = Path(__file__).parent / "corpus"

# Every table an import may write: compared before and after each bad file (0 half-written imports).
COUNTED = ("enrollments.Customer", "enrollments.Account", "enrollments.ServiceAgreement", "devices.Premise",
           "devices.ServicePoint", "devices.Device", "devices.DeviceInstallation", "cpm.AuditEntry")


def load_manifest(family: str) -> list[dict]:
    """The manifest of ``corpus/<family>/``, each entry with its ``path``."""
    entries = json.loads((CORPUS / family / "manifest.json").read_text())
    for entry in entries:
        entry["path"] = CORPUS / family / entry["file"]
    return entries


def counts() -> dict[str, int]:
    return {label: apps.get_model(label).objects.count() for label in COUNTED}


def assert_names_errors(text: str, entry: dict) -> None:
    """Every expected ``[line, field, message]`` is one reported line: ``line N: field: ...message...``."""
    text = html.unescape(text)
    lines = [part for chunk in text.split("<li>") for part in chunk.splitlines()]
    for line, field, message in entry["errors"]:
        head = f"line {line}: " + (f"{field}: " if field else "")
        assert any(head in candidate and message in candidate for candidate in lines), (
            f"{entry['file']}: expected {head!r} with {message!r} in:\n{text[:3000]}")


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Internal Server Error" not in text, text[:3000]
